"""Pairs deduplicated across kinds: the same chosen/rejected texts made by two builders are one
`pairs` row and one `dpo` row, with the kinds merged in provenance."""

from __future__ import annotations

import json
from collections import Counter

from labeled_rows import labeled_trace  # tests/ is on sys.path (pytest rootdir conftest)

from schemas.pairs import pair_kinds
from stages.export.stage import dpo_row
from stages.pairs.common import dedupe_and_cap, make_pair
from stages.pairs.fidelity_pairs import fidelity_pairs
from stages.pairs.trace_pairs import trace_pairs


def trace(tid: str, confidence: float, **kw) -> dict:
    completion = f"<think>{tid}</think> The answer is \\boxed{{12}}."
    return labeled_trace(tid, completion=completion, answer_confidence=confidence, **kw)


def pair(kind: str, chosen: str, rejected: str, problem: str = "p", **provenance) -> dict:
    t = {"problem_id": problem, "problem": "?"}
    return make_pair(kind, kind, t, "", chosen, rejected, -0.1, -0.5, 1.0, provenance)  # type: ignore[return-value]


def test_a_trace_pair_that_is_also_a_fidelity_pair_is_one_row_with_both_kinds():
    """The real builders: a confident clean trace over a less confident rationalized one is both a
    trace pair (ranked by answer confidence) and a fidelity pair (faithful over rationalized)."""
    clean = trace("a", -0.05)
    rationalized = trace("c", -0.5, first_error=0, first_error_symbolic=0, rationalized=True)
    candidates = trace_pairs([clean, rationalized], -1.0, 0.1) + fidelity_pairs([clean, rationalized])
    assert sum(p is not None for p in candidates) == 2
    dropped: Counter[str] = Counter()
    (row,) = dedupe_and_cap(candidates, 8, dropped)
    assert dropped == {"duplicate": 1}
    assert row["kind"] == "trace" and row["source"] == "trace_ranking"  # the first builder's row
    prov = json.loads(row["provenance"])
    assert prov["kinds"] == ["trace", "fidelity"]
    assert prov["chosen_trace"] == "a" and prov["rejected_trace"] == "c"
    fid = prov["merged"]["fidelity"]
    assert fid["source"] == "fidelity" and fid["margin"] == 1.0 and fid["rejected_reason"] == "rationalized"
    dpo = dpo_row(row)
    assert json.loads(dpo["provenance"])["kinds"] == ["trace", "fidelity"]
    assert (
        dpo["chosen"][0]["content"] == clean["completion"]
        and dpo["rejected"][0]["content"] == rationalized["completion"]
    )


def test_the_pair_id_is_the_texts_not_the_kind():
    assert pair("trace", "x", "y")["pair_id"] == pair("fidelity", "x", "y")["pair_id"]
    assert pair("trace", "x", "y")["pair_id"] != pair("trace", "y", "x")["pair_id"]
    assert pair("trace", "x", "y")["pair_id"] != pair("trace", "x", "y", problem="q")["pair_id"]


def test_a_merged_kind_uses_no_cap_and_a_repeat_of_the_same_kind_adds_nothing():
    candidates = [
        pair("trace", "x", "y", n=1),
        pair("trace", "x", "y", n=2),  # the same kind again: dropped, not merged
        pair("trace", "x", "z"),  # over the trace cap of 1
        pair("fidelity", "x", "y", n=3),  # merged into the first row, not counted against fidelity's cap
        pair("fidelity", "x", "w"),
        None,  # a builder's identical sides
    ]
    dropped: Counter[str] = Counter()
    out = dedupe_and_cap(candidates, 1, dropped)
    assert [(p["kind"], p["chosen"], p["rejected"]) for p in out] == [("trace", "x", "y"), ("fidelity", "x", "w")]
    assert dropped == {"duplicate": 2, "per_problem_cap": 1}
    prov = json.loads(out[0]["provenance"])
    assert prov["kinds"] == ["trace", "fidelity"] and prov["n"] == 1 and prov["merged"]["fidelity"]["n"] == 3
    assert json.loads(out[1]["provenance"]) == {"kinds": ["fidelity"]}
    assert dedupe_and_cap(candidates, 1) == out  # the drop counts are optional


def test_a_pair_capped_under_one_kind_is_kept_under_another():
    candidates = [pair("trace", "x", "z"), pair("trace", "x", "y"), pair("fidelity", "x", "y")]
    out = dedupe_and_cap(candidates, 1)
    assert [(p["kind"], p["rejected"]) for p in out] == [("trace", "z"), ("fidelity", "y")]
    assert json.loads(out[1]["provenance"])["kinds"] == ["fidelity"]


def test_training_on_a_kind_selects_the_rows_it_was_merged_into():
    merged = dpo_row(dedupe_and_cap([pair("trace", "x", "y"), pair("fidelity", "x", "y")], 8)[0])
    assert merged["kind"] == "trace" and pair_kinds(merged) == ["trace", "fidelity"]
    assert pair_kinds({"kind": "step", "provenance": json.dumps({"trace": "t"})}) == ["step"]  # older rows
