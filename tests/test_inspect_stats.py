"""The inspector's statistics, without a browser: what its tables say, over a synthetic run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_run import write_synthetic_run  # tests/ is on sys.path (pytest rootdir conftest)

from flows.pipeline import PIPELINE
from stages.inspect import stats
from stages.inspect.sources import locate


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("inspect-stats") / "run", n_traces=400)


def test_the_overview_funnel_is_run_jsons_and_lists_each_drop_once(synthetic):
    """The funnel and its drops are run.json's (the card's too): frontier drops once, kept rows
    no drop, duplicates apart from the per-problem cap, the frontier's `kept` its count."""
    src = locate(synthetic, PIPELINE.inputs_of("report", synthetic))
    run = json.loads((synthetic / "run.json").read_text())
    assert stats.run_funnel(src.run) == run["funnel"]
    assert stats.run_funnel({"stages": run["stages"]}) == run["funnel"]  # a run.json without one: the same
    f = run["funnel"]
    got = {(d["stage"], d["reason"]): d["n"] for d in f["drops"]}
    assert len(got) == len(f["drops"]) and not any(reason == "kept" for _, reason in got)
    assert got[("generate", "missing_answer")] == 3 and got[("label", "judge_unparseable")] == 2
    assert got[("pairs", "duplicate")] == 10 and got[("pairs", "per_problem_cap")] == 20
    frontier = {reason: n for (stage, reason), n in got.items() if stage == "frontier"}
    kept = run["stages"]["frontier"]["kept"]
    assert sum(frontier.values()) == 400 - kept
    assert [s["step"] for s in f["traces"]] == ["problems", "traces", "labeled", "kept"]
    assert f["traces"][-1]["n"] == kept and f["tokens"]["frontier"]["total"] == 7 * 400
