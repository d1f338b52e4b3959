"""The `evaluate` flow: its pieces, and `prefect deployment run evaluate/demo` on a real server and
worker with two real models (the flow run starts its own engines in the worker's subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_dataset
from prefect_stack import run_deployment

from flows.evaluate import EVALUATION, compare, for_model, leaderboard_markdown, load_summary, slug
from flows.pipeline import PIPELINE
from schemas import EVAL_SCORES
from stages.eval_results import summary_rows

SMALL = {"problems.limit": 8, "generate.sampling.n": 4, "generate.chunk_size": 4, "score.ks": [1, 4]}


def test_the_evaluation_reuses_the_pipelines_stages():
    assert [EVALUATION[n] for n in ("problems", "generate", "label")] == [
        PIPELINE[n] for n in ("problems", "generate", "label")
    ]
    recipe = EVALUATION.load("eval-demo")
    student = for_model(recipe, "tiny:student")
    assert student.models["generator"].model == "tiny:student"
    assert student.models["generator"].kv_cache_memory_bytes == recipe.models["generator"].kv_cache_memory_bytes
    assert recipe.models["generator"].model == "tiny:teacher"  # the recipe itself is unchanged
    assert slug("Qwen/Qwen3-8B") == "Qwen-Qwen3-8B" and slug("tiny:student") == "tiny-student"


def test_summary_rows_flatten_every_interval_of_a_summary():
    summary = {
        "answers": {"pass@1": [0.5, 0.4, 0.6]},
        "thinking": {"table": {"both_right": [0.4, 0.3, 0.5]}, "table_counts": {"both_right": 12}},
        "overthinking": {"thinking_tokens_right": 80.0},
    }
    rows = summary_rows("m", summary)
    assert [(r["section"], r["metric"], r["estimate"], r["high"]) for r in rows] == [
        ("answers", "pass@1", 0.5, 0.6),
        ("thinking", "table.both_right", 0.4, 0.5),
    ]  # counts and unbootstrapped figures stay in the card, not in the interval table


def test_compare_says_which_differences_are_beyond_the_intervals():
    a = {"problems": 5, "answers": {"pass@1": [0.7, 0.6, 0.8]}, "thinking": {"agreement": [0.9, 0.8, 1.0]}}
    b = {"problems": 5, "answers": {"pass@1": [0.3, 0.2, 0.4]}, "thinking": {"agreement": [0.85, 0.7, 0.95]}}
    rows = {r["metric"]: r for r in compare(a, b)}
    assert rows["pass@1"]["delta"] == pytest.approx(-0.4) and rows["pass@1"]["overlap"] is False
    assert rows["agreement"]["overlap"] is True and set(rows) == {"pass@1", "agreement"}
    table = leaderboard_markdown({"m": a})
    assert "| `m` | 5 | 0.700 [0.600, 0.800] |" in table


def test_deployment_run_evaluate_demo_scores_two_models(prefect_stack, tmp_path):
    out = tmp_path / "eval"
    params = {"out": str(out), "overrides": SMALL | {"executor": {"kind": "local", "tasks": 1, "workers": 1}}}
    run_deployment(prefect_stack, "evaluate/demo", params)
    board = json.loads((out / "leaderboard.json").read_text())
    assert list(board) == ["tiny:teacher", "tiny:student"]
    for model, summary in board.items():
        assert summary["models"] == [model] and summary["problems"] == 8 and summary["samples"] == 32
        assert summary["first_errors"]["first_error_source"] == "exact truth"
        assert 0 <= summary["answers"]["pass@1"][0] <= summary["answers"]["pass@4"][0] <= 1
        assert summary["thinking"]["agreement"][0] is not None
        assert load_summary(out / slug(model)) == summary
        folder = EVALUATION.path("score", out / slug(model))
        scores = load_dataset("parquet", data_files=str(folder / "eval_scores.parquet"), split="train")
        assert scores.features == EVAL_SCORES and len(scores) == 32
        assert all(r["first_error_source"] == "exact truth" for r in scores)
        ratios = scores["deep_thinking_ratio"]
        assert all(0 <= r <= 1 for r in ratios) and len(set(ratios)) > 1  # read off the model, per trace
        assert summary["depth"]["deep_thinking_ratio"][0] == pytest.approx(sum(ratios) / len(ratios), abs=1e-6)
    # published like the corpus: two configs `datasets` loads by folder, and a card with the leaderboard
    summary = load_dataset(str(out / "results"), "summary", split="train")
    teacher = {r["metric"]: r for r in summary if r["model"] == "tiny:teacher"}
    assert teacher["pass@1"]["estimate"] == pytest.approx(board["tiny:teacher"]["answers"]["pass@1"][0])
    assert "table.knows_but_says_otherwise" in teacher and "deep_thinking_ratio" in teacher
    assert len(load_dataset(str(out / "results"), "scores", split="train")) == 64
    card = (out / "results" / "README.md").read_text()
    assert leaderboard_markdown(board) in card and "### `tiny:student`" in card
    page = (out / "report.html").read_text()  # the inspector, with both models side by side
    data = json.loads(page.split('id="tm-data">', 1)[1].split("</script>", 1)[0])
    assert data["meta"]["kind"] == "evaluation" and data["meta"]["total"] == 64
    assert list(data["evaluation"]["models"]) == ["tiny:teacher", "tiny:student"]
    pass1 = next(r for r in data["evaluation"]["rows"] if r["metric"] == "pass@1")
    assert pass1["values"]["tiny:student"] == pytest.approx(board["tiny:student"]["answers"]["pass@1"])
    run = json.loads((Path(out) / "tiny-student" / "run.json").read_text())
    assert run["complete"] and run["stages"]["generate"]["engines_at_start"] == []
    assert run["stages"]["depth"]["engines_at_start"] == []  # vLLM closed before transformers loads the weights


def test_depth_rows_with_and_without_the_model():
    from stages.depth.stage import depth_row
    from stages.logit_lens import DepthConfig, load_model

    trace = {"trace_id": "t", "problem_id": "p", "model": "tiny:student", "thinking_tokens": 3, "answer_tokens": 2,
             "prompt": "<|user|>What is 1 + 2?<|assistant|>", "completion": "<think>\n1 + 2 = 3\n</think>"}  # fmt: skip
    off = depth_row(None, trace, DepthConfig())  # `depth.enabled: false`
    assert off["deep_thinking_ratio"] is None and off["completion_tokens"] == 5
    on = depth_row(load_model("tiny:student", device="cpu"), trace, DepthConfig())
    assert 0 <= on["deep_thinking_ratio"] <= 1 and on["completion_tokens"] == 13  # <think> is one token
