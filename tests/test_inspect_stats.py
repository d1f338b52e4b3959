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


def test_drop_table_lists_only_drops_each_once(synthetic):
    """Folders hold every drop (a resumed stage's run.json counts only its last run); run.json
    fills in stages without folders; kept rows are no drop."""
    src = locate(synthetic, PIPELINE.inputs_of("report", synthetic))
    got = {(d["stage"], d["reason"]): (d["n"], d["source"]) for d in stats.drops(src)}
    assert got[("generate", "missing_answer")] == (3, "rejects")  # run.json's count of it is not added
    assert got[("generate", "prompt_too_long")] == (1, "rejects")
    assert got[("label", "judge_unparseable")] == (2, "rejects")
    frontier = {reason: n for (stage, reason), (n, source) in got.items() if stage == "frontier"}
    kept = json.loads((synthetic / "run.json").read_text())["stages"]["frontier"]["kept"]
    assert "kept" not in frontier and sum(frontier.values()) == 400 - kept
