"""The inspector's statistics, without a browser: what its tables say, over a synthetic run."""

from __future__ import annotations

import json
from math import log
from pathlib import Path

import polars as pl
import pytest
from synthetic_run import write_synthetic_run  # tests/ is on sys.path (pytest rootdir conftest)

from flows.pipeline import PIPELINE
from stages.report import marks, measures, stats
from stages.report.sources import locate, scan_traces


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


def _steps(*lps: float) -> list[dict]:
    return [{"index": i, "mean_logprob": lp} for i, lp in enumerate(lps)]


def test_calibration_counts_steps_up_to_the_first_error_in_bins_near_one():
    """Steps after the first error are left out; 0.995 and 0.9995 fall in different bins."""
    lf = pl.LazyFrame(
        {
            "first_error": [1, -1, None],
            "steps": [_steps(log(0.995), log(0.5), log(0.2)), _steps(log(0.9995), log(0.995)), _steps(log(0.9))],
        }
    )
    cal = measures.calibration(lf)
    bins = {(b["lo"], b["hi"]): (b["k"], b["n"]) for b in cal["bins"]}
    assert bins == {(0.5, 0.8): (0, 1), (0.99, 0.999): (2, 2), (0.999, 0.9999): (1, 1)}  # 0.2 after the error
    assert cal["steps"] == 4 and cal["ece"] == pytest.approx((0.5 + 2 * 0.005 + 0.0005) / 4, rel=1e-3)
    lo, hi = next(b["ci"] for b in cal["bins"] if b["lo"] == 0.99)
    assert 0.3 < lo < 0.35 and hi == 1.0  # Wilson 95% for 2 of 2


def test_wilson_and_kappa_by_hand():
    assert measures.wilson(0, 0) == (None, None)
    lo, hi = measures.wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert measures.cohen_kappa(20, 5, 10, 15) == pytest.approx(0.4)  # p_o 0.7, p_e 0.5
    assert measures.cohen_kappa(0, 0, 0, 9) == 1.0 and measures.cohen_kappa(0, 0, 0, 0) is None
    assert measures.cohen_kappa(0, 5, 5, 0) == pytest.approx(-1.0)


def test_labeler_coverage_reasons_and_the_thinking_table(synthetic):
    src = locate(synthetic, PIPELINE.inputs_of("report", synthetic))
    lf = scan_traces(src)
    agree = measures.labeler_agreement(lf)
    judge = next(c for c in agree["coverage"] if c["labeler"] == "judge")
    failed = lf.select(pl.col("first_error_judge").is_null().sum()).collect().item()
    assert judge["answered"] + failed == agree["total"] == 400 and judge["notes"] == {"misquoted_step": failed}
    for p in agree["pairs"]:
        assert p["yy"] + p["yn"] + p["ny"] + p["nn"] == p["n"] and -1 <= p["kappa"] <= 1
    t = measures.thinking_final(lf)
    assert t["rr"] + t["rw"] + t["wr"] + t["ww"] + t["unknown"] == 400


def test_step_marks_tell_own_verdicts_from_carried_and_inferred():
    steps = [
        {"symbolic": "correct", "mc_value": None, "label": True},
        {"symbolic": "unknown", "mc_value": 0.5, "label": True},
        {"symbolic": "wrong", "mc_value": 0.0, "label": False},
        {"symbolic": "correct", "mc_value": None, "label": False},
        {"symbolic": "correct", "mc_value": None, "label": True},
    ]
    branches = [{"after": 1, "reached": r} for r in (True, False)] + [{"after": 2, "reached": False}] * 2
    r = {"first_error_mc": 2, "first_error_judge": None, "first_error": 2, "branches": branches}
    got = marks.step_marks(r, steps)
    assert [m[0] for m in got] == ["+", "0", "-", "+", "+"]  # symbolic: every step its own
    assert [m[1] for m in got] == ["i", "+", "-", "c", "c"] and got[1][2] == [1, 2] and got[2][2] == [0, 2]
    assert {m[3] for m in got} == {"?"}  # the judge failed
    assert [m[4] for m in got] == ["+", "+", "-", "c", "r"]  # right again after a repair
    assert marks.labeler_notes('{"judge": {"first_error": null, "note": "misquoted_step"}}') == {
        "judge": "misquoted_step"
    }


def test_pair_divergence_collapses_the_shared_text_and_keeps_the_answer():
    tail = " then more." * 200
    d = marks.divergence("<think>", "a b = 20" + tail + " \\boxed{20}", "a b = 21" + tail + " \\boxed{21}", 300)
    assert d["shared"] == "<think>a b = " and d["shared_chars"] == len("<think>a b = ")
    assert d["chosen"].startswith("20 then") and d["chosen"].endswith("\\boxed{20}") and len(d["chosen"]) < 340
    assert d["rejected"].endswith("\\boxed{21}") and d["tail"] == ""
    same_end = marks.divergence("", "x is 3. The answer is 5.", "x is 4. The answer is 5.", 100)
    assert (same_end["chosen"], same_end["rejected"], same_end["tail"]) == ("3.", "4.", " The answer is 5.")
