"""`thoughtmill train`: TRL fine-tunes on the published configs, and the checkpoint is a model like
any other (vLLM loads it as the evaluate flow's generator)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from datasets import load_dataset

from schemas.pairs import pair_kinds
from stages.train.stage import RECORD, TrainConfig, sft_example, train

pytestmark = pytest.mark.vllm


def test_sft_rows_keep_reasoning_inline():
    user = {"role": "user", "content": "What is 2 + 3?", "reasoning_content": None}
    assistant = {"role": "assistant", "content": "The answer is \\boxed{5}.", "reasoning_content": "2 + 3 = 5"}
    row = {"messages": [user, assistant]}
    ex = sft_example(row)
    assert ex["prompt"] == [{"role": "user", "content": "What is 2 + 3?"}]
    assert ex["completion"][0]["content"] == "<think>\n2 + 3 = 5\n</think>\n\nThe answer is \\boxed{5}."


def test_sft_checkpoint_loads_in_vllm_and_is_evaluated(demo_run, tmp_path):
    dataset = demo_run[1]["stages"]["publish"]["path"]
    out = tmp_path / "sft"
    result = train(TrainConfig(method="sft", dataset=dataset, max_steps=3, batch_size=4), out)
    assert result["steps"] == 3 and math.isfinite(result["training_loss"])
    record = json.loads((out / RECORD).read_text())
    assert record["rows"] == len(load_dataset(dataset, "sft", split="train")) and len(record["data_fingerprint"]) == 16
    assert record["config"]["method"] == "sft" and (out / "model.safetensors").is_file()
    cmd = [sys.executable, "-m", "flows.cli", "eval", "--models", str(out), "--out", str(tmp_path / "eval")]
    for s in ("problems.limit=4", "generate.sampling.n=2", "generate.chunk_size=4", "score.ks=[1,2]"):
        cmd += ["--set", s]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    board = json.loads((tmp_path / "eval" / "leaderboard.json").read_text())
    assert board[str(out)]["samples"] == 8 and board[str(out)]["models"] == [str(out)]


def test_dpo_trains_on_the_pair_kinds_asked_for(demo_run, tmp_path):
    dataset = demo_run[1]["stages"]["publish"]["path"]
    kinds = [pair_kinds(r) for r in load_dataset(dataset, "dpo", split="train")]  # a merged pair has several
    cfg = TrainConfig(method="dpo", dataset=dataset, kinds=["step"], max_steps=2, batch_size=2, learning_rate=1e-5)
    result = train(cfg, tmp_path / "dpo")
    assert result["rows"] == sum("step" in k for k in kinds) > 0 and result["steps"] == 2
    with pytest.raises(ValueError, match="no dpo rows"):
        train(cfg.model_copy(update={"kinds": ["no-such-kind"]}), tmp_path / "none")
