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
    run = json.loads((Path(out) / "tiny-student" / "run.json").read_text())
    assert run["complete"] and run["stages"]["generate"]["engines_at_start"] == []
