"""The discriminative PRM labeler through the engine layer: the tiny PRM shipped beside the tiny
reasoner (a Llama token classifier, which vLLM's pooling runner does not serve: transformers)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from stages.arithmetic.problems import generate, solution_steps, trace_paragraphs
from stages.arithmetic.truth import first_error, step_truth
from stages.engine import EngineConfig, build_engine, resolve_model
from stages.engine.step_layout import step_layout
from stages.label.labelers.prm import PRMLabeler, PRMLabelerConfig
from stages.score.metrics import auroc

PRM = EngineConfig(model="tiny:prm", backend="transformers", runner="pooling")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prm_engine():
    engine = build_engine(PRM)
    yield engine
    engine.close()


def held_out_traces(n: int = 48, seed: int = 3) -> list[dict]:
    """Eval-split problems (never in the PRM's data) written as the tiny reasoner writes them:
    half clean, half with one uncorrected slip carried forward; exact truth per step."""
    rng = random.Random(seed)
    out = []
    for i, p in enumerate(generate("eval", n, seed=seed)):
        slip = rng.randrange(len(solution_steps(p.tree))) if i % 2 else None
        steps = trace_paragraphs(p, rng, p_check=0.0, p_fix=0.0, slip_at=slip)
        out.append({"problem": p.text, "steps": [{"text": s} for s in steps], "truth": step_truth(p.tree, steps)})
    return out


def test_step_layout_is_what_trl_trains_on(prm_engine):
    trl_prm = pytest.importorskip("trl.experimental.prm")
    tok = prm_engine.tokenizer
    steps = ["9 + 4 = 13, now 13 - 4", "13 - 4 = 9", "So the answer is 9."]
    row = {"prompt": "What is 9 + 4 - 4?", "completions": steps, "labels": [True, False, False]}
    ref = trl_prm.PRMTrainer.tokenize_row(row, tok, "\n", None, None, False, False)
    ids, positions = step_layout(tok, row["prompt"], steps, "\n")
    assert ids == ref["input_ids"]
    assert positions == [i for i, label in enumerate(ref["labels"]) if label != -100]


def test_batched_rewards_equal_one_trace_at_a_time(prm_engine):
    """The engine pads a batch; each trace alone, laid out by TRL's own tokenizer, must score the same."""
    trl_prm = pytest.importorskip("trl.experimental.prm")
    traces = held_out_traces(12)
    got = prm_engine.step_rewards(
        [t["problem"] for t in traces], [[s["text"] for s in t["steps"]] for t in traces], "\n"
    )
    path = resolve_model("tiny:prm")
    model, tok = AutoModelForTokenClassification.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    for t, rewards in zip(traces, got):
        row = {
            "prompt": t["problem"],
            "completions": [s["text"] for s in t["steps"]],
            "labels": [True] * len(t["steps"]),
        }
        ref = trl_prm.PRMTrainer.tokenize_row(row, tok, "\n", None, None, False, False)
        with torch.no_grad():
            probs = model(input_ids=torch.tensor([ref["input_ids"]])).logits.softmax(-1)[0, :, 1]
        want = [float(probs[i]) for i, label in enumerate(ref["labels"]) if label != -100]
        assert rewards == pytest.approx(want, abs=1e-5)


def test_prm_scores_planted_slips_lower_and_labels_by_threshold(prm_engine):
    """The shipped tiny PRM separates first-error steps from correct ones only weakly (its AUROC
    on held-out traces is in the README): above chance, which a broken layout or an untrained
    head would not be; and each verdict is the first step below the threshold."""
    traces = held_out_traces(200)
    truth = [first_error(t["truth"]) for t in traces]
    got = PRMLabeler(prm_engine, PRMLabelerConfig(threshold=0.75)).label(traces)
    for lab in got:
        below = [i for i, r in enumerate(lab.step_values) if r < 0.75]
        assert lab.first_error == (below[0] if below else -1) and lab.tokens == 0
    scores, correct = [], []
    for lab, first in zip(got, truth):
        for i, value in enumerate(lab.step_values):
            if first < 0 or i <= first:  # steps up to the first error: right ones, and the slip
                scores.append(value)
                correct.append(i != first)
    assert 40 <= sum(not c for c in correct) and auroc(np.array(scores), np.array(correct)) > 0.55


def test_unscored_steps_leave_the_trace_undecided():
    class Short:
        name, max_model_len = "short", 8

        def step_rewards(self, problems, steps, separator):
            return [[0.9, None], [0.2, None], [0.9, 0.9]]

    got = PRMLabeler(Short(), PRMLabelerConfig(threshold=0.5)).label(
        [{"problem": "p", "steps": [{"text": "a"}] * 2}] * 3
    )
    assert [g.first_error for g in got] == [None, 0, -1]
    assert got[0].note == "prm_context_exceeded" and got[0].step_labels == [True, None]


def test_a_prm_role_must_be_a_pooling_model():
    with pytest.raises(ValueError, match="runner: pooling"):
        EngineConfig(model="tiny:prm", backend="transformers")
    with pytest.raises(ValueError, match="in-process"):
        EngineConfig(model="x", backend="openai", base_url="http://h/v1", runner="pooling")

    class Generator:
        name = "tiny:teacher"

    with pytest.raises(ValueError, match="not a step-reward model"):
        PRMLabeler(Generator(), PRMLabelerConfig())


# In a child process: this session's in-process vLLM engines share process-wide state that
# starting and closing another engine here would tear down.
VLLM_REWARDS = """
import json, sys
from stages.engine import EngineConfig, build_engine
if __name__ == "__main__":
    args = json.loads(open(sys.argv[1]).read())
    config = EngineConfig(model=args["model"], runner="pooling", enforce_eager=True, block_size=32,
                          kv_cache_memory_bytes=2**27)
    engine = build_engine(config)
    rewards = engine.step_rewards(args["problems"], args["steps"], args["separator"])
    engine.close()
    open(sys.argv[2], "w").write(json.dumps(rewards))
"""


@pytest.mark.vllm
def test_vllm_pooling_serves_the_converted_prm_with_the_same_rewards(prm_engine, tmp_path):
    """vLLM's pooling runner serves Qwen2.5-Math-PRM's architecture; the tiny PRM converted to it
    exactly (`prm_qwen2.py`) must score every step as the transformers backend does."""
    from infra.tiny_reasoner.prm_qwen2 import convert

    converted = convert(resolve_model("tiny:prm"), tmp_path / "prm-qwen2")
    traces = held_out_traces(16) * 2  # the same traces again: with their prefixes cached
    args = {
        "model": str(converted),
        "problems": [t["problem"] for t in traces],
        "steps": [[s["text"] for s in t["steps"]] for t in traces],
        "separator": PRMLabelerConfig().step_separator,
    }
    (tmp_path / "args.json").write_text(json.dumps(args))
    run = [sys.executable, "-c", VLLM_REWARDS, str(tmp_path / "args.json"), str(tmp_path / "out.json")]
    done = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads((tmp_path / "out.json").read_text())
    want = prm_engine.step_rewards(args["problems"], args["steps"], args["separator"])
    assert [len(r) for r in got] == [len(r) for r in want]
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=2e-3)


def test_label_stage_runs_the_prm_as_a_consensus_source(prm_engine, tmp_path):
    """Model-free traces through the label stage with the PRM beside the symbolic checker: its
    step columns and first error land in the labeled shard, and it votes in the consensus."""
    from infra.reliability.synthetic import write_synthetic_run
    from schemas.labels import LABELED_TRACES
    from stages.label.stage import Label, LabelConfig
    from stages.shards import read_table, shard_paths

    traces_dir = write_synthetic_run(tmp_path / "run", 32, shard_problems=4)[1][0].parent
    cfg = LabelConfig(
        labelers=["symbolic", "prm"], consensus={"sources": ["symbolic", "prm"]}, fidelity={"info_gain": False}
    )
    assert cfg.roles_used() == {"prm": "prm"}
    Label(traces_dir, tmp_path / "labeled", cfg, engines={"prm": prm_engine}).run()
    rows = [r for p in shard_paths(tmp_path / "labeled") for r in read_table(p, LABELED_TRACES).to_pylist()]
    assert len(rows) == 32
    for t in rows:
        values = [s["prm_value"] for s in t["steps"]]
        assert all(v is not None and 0 <= v <= 1 for v in values)
        below = [i for i, v in enumerate(values) if v < cfg.prm.threshold]
        assert t["first_error_prm"] == (below[0] if below else -1)
        agree = t["first_error_symbolic"] is not None and t["first_error_symbolic"] == t["first_error_prm"]
        assert (t["consensus"] == "agree") == agree
