"""The `improve` flow: `prefect deployment run improve/demo` on a real server and worker, one round
with few steps (the mechanics: the policy curates, a checkpoint is written, vLLM loads it, the
evaluation scores it, and a re-run resumes instead of training again)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from prefect_stack import run_deployment

from flows.improve import curate_overrides, load_improve

ONE = {"executor": {"kind": "local", "tasks": 1, "workers": 1}}
CURATE = {"problems.split": "train", "problems.limit": 6, "generate.sampling.n": 4, "generate.chunk_size": 6,
          "frontier.samples": 4, "pairs.next_step.prefixes_per_problem": 2, **ONE}  # fmt: skip
EVALUATE = {"problems.limit": 4, "generate.sampling.n": 2, "generate.chunk_size": 4, "score.ks": [1, 2], **ONE}
TRAIN = {"method": "dpo", "kinds": ["step", "trace", "fidelity"], "max_steps": 2, "batch_size": 2}


def test_the_policy_plays_its_roles_in_the_curate_recipe():
    recipe = load_improve("improve-demo")
    over = curate_overrides(recipe, "out/x/round-1/checkpoint")
    assert over["problems.split"] == "train"  # never the eval split
    assert {k: v for k, v in over.items() if k.startswith("models.")} == {
        f"models.{role}.model": "out/x/round-1/checkpoint" for role in ("generator", "completer", "student")
    }


@pytest.mark.vllm
def test_deployment_run_improve_demo_one_round(prefect_stack, tmp_path):
    out = tmp_path / "improve"
    overrides = {"curate_overrides": CURATE, "evaluate_overrides": EVALUATE, "train": TRAIN}
    params = {"out": str(out), "overrides": overrides}
    run_deployment(prefect_stack, "improve/demo", params)
    record = json.loads((out / "improve.json").read_text())
    assert [r["round"] for r in record["rounds"]] == [0, 1] and record["rounds"][0]["policy"] == "tiny:student"
    r1 = record["rounds"][1]
    checkpoint = out / "round-1" / "checkpoint"
    assert r1["policy"] == record["policy"] == str(checkpoint) and (checkpoint / "model.safetensors").is_file()
    assert r1["train"]["steps"] == 2 and r1["train"]["rows"] > 0 and r1["train"]["config"]["model"] == "tiny:student"
    # round 1 curated with the base policy in its roles, on the train split
    traces = pl.read_parquet(out / "round-1" / "curate" / "dataset" / "data" / "traces" / "*.parquet")
    assert set(traces["model"]) == {"tiny:student"}
    # the new checkpoint ran in vLLM as the evaluation's generator
    board = json.loads((out / "round-1" / "eval" / "leaderboard.json").read_text())
    assert list(board) == [str(checkpoint)] and board[str(checkpoint)]["samples"] == 8
    assert r1["eval"]["pass@1"][0] == board[str(checkpoint)]["answers"]["pass@1"][0]
    # a re-run resumes: the checkpoint is kept, not trained again
    stamp = (checkpoint / "model.safetensors").stat().st_mtime_ns
    run_deployment(prefect_stack, "improve/demo", params)
    assert (checkpoint / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((out / "improve.json").read_text())["rounds"][1]["eval"] == r1["eval"]
