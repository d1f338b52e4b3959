"""Self-corrected vs rationalized traces: repairs found in the text, checked against the exact
arithmetic truth, the step labels after a repair, and which traces fidelity pairs reject."""

from __future__ import annotations

import json
import random

import pytest
from labeled_rows import labeled_trace  # tests/ is on sys.path (pytest rootdir conftest)
from pydantic import ValidationError

from flows.pipeline import PIPELINE
from stages.arithmetic.problems import generate, trace_paragraphs
from stages.arithmetic.repair import correction, repaired_labels, repairs, self_correction
from stages.arithmetic.truth import (
    first_error,
    parse_expression,
    problem_step_truth,
    step_repairs,
    step_truth,
)
from stages.label.base import labels_from_first_error
from stages.label.consensus import ConsensusConfig
from stages.label.fidelity import FidelityConfig
from stages.label.stage import Label, LabelConfig
from stages.pairs.fidelity_pairs import fidelity_pairs, unfaithful_reason

# What is 16 - 7 + 3?  (= 12)
CAUGHT = ["16 - 7 = 8", "Wait, 16 - 7 = 9, not 8, now 9 + 3.", "9 + 3 = 12", "So the answer is 12."]
NEVER_REPAIRED = ["16 - 7 = 8, now 8 + 3", "8 + 3 = 12", "So the answer is 12."]  # right answer, wrong steps
SAME_STEP = ["16 - 7 = 8. No: 16 - 7 = 9, now 9 + 3.", "9 + 3 = 12", "So the answer is 12."]
ONE_OF_TWO = ["16 - 7 = 8", "Wait, 16 - 7 = 9, now 9 + 3.", "9 + 3 = 13", "So the answer is 12."]
LATEX = [r"$\frac{1}{2} + \frac{1}{3} = \frac{2}{5}$", r"Wait: $\frac{1}{2} + \frac{1}{3} = \frac{5}{6}$.", "Done."]
NO_CLAIM = ["Subtract first.", "16 - 7 = 9, now 9 + 3.", "9 + 3 = 12", "So the answer is 12."]


def carried(first: int, n: int) -> list[bool | None]:
    return labels_from_first_error(first, n)


def test_a_later_step_that_restates_the_claim_right_repairs_it():
    assert repairs(CAUGHT) == {0: 1}
    assert repairs(NEVER_REPAIRED) == {0: None, 1: None}  # `8 + 3 = 12` is false too
    assert repairs(SAME_STEP) == {0: 0}  # the step repairs itself, after its false claim
    assert repairs(ONE_OF_TWO) == {0: 1, 2: None}
    assert repairs(LATEX) == {0: 1}  # LaTeX normalised as the symbolic checker does
    assert repairs(["16 - 7 = 9", "16 - 7 = 8"]) == {1: None}  # a true claim before a slip repairs nothing
    assert repairs(NO_CLAIM) == {}


def test_self_corrected_only_when_every_false_claim_is_repaired():
    assert self_correction(CAUGHT, 0) == {0: 1}
    assert self_correction(SAME_STEP, 0) == {0: 0}
    assert self_correction(NEVER_REPAIRED, 0) is None
    assert self_correction(ONE_OF_TWO, 0) is None  # the second slip is never repaired
    assert self_correction(CAUGHT, -1) is None and self_correction(CAUGHT, None) is None
    # a flaw located by the judge or rollouts on a step without a false claim: nothing to see repaired
    assert self_correction(NO_CLAIM, 0) is None


@pytest.mark.parametrize(
    ("steps", "first", "final_correct", "self_corrected", "rationalized"),
    [
        (CAUGHT, 0, True, True, False),
        (NEVER_REPAIRED, 0, True, False, True),
        (ONE_OF_TWO, 0, True, False, True),
        (NO_CLAIM, 0, True, False, True),
        (CAUGHT, 0, False, False, False),  # repaired, yet wrong: some flaw no labeler located
        (CAUGHT, -1, True, False, False),  # no flaw located: neither
        (CAUGHT, None, True, False, False),  # no consensus: neither
    ],
)
def test_correction_verdicts(steps, first, final_correct, self_corrected, rationalized):
    labels = carried(first, len(steps)) if first is not None else [None] * len(steps)
    fix = correction(steps, first, labels, final_correct, "correct")
    assert (fix.self_corrected, fix.rationalized) == (self_corrected, rationalized)
    assert not (fix.self_corrected and fix.rationalized)
    if not self_corrected:
        assert fix.step_labels == labels and fix.repairs == {}


def test_steps_after_a_repair_are_correct_again_unless_the_recipe_carries_the_error():
    steps = ["3 + 4 = 7, now 7 * 2", "7 * 2 = 15", "So it is 15?", "Wait, 7 * 2 = 14, now 14 - 1.", "14 - 1 = 13"]
    labels = carried(1, len(steps))
    good_again = correction(steps, 1, labels, True, "correct")
    assert good_again.repairs == {1: 3}
    # the slip and the step built on it stay wrong; the repair and what follows are right
    assert good_again.step_labels == [True, False, False, True, True]
    assert correction(steps, 1, labels, True, "carry").step_labels == labels
    dropped = [True, False, None, None, None]  # after_error: drop keeps its nulls before the repair
    assert repaired_labels(dropped, {1: 3}, 1) == [True, False, None, True, True]
    assert repaired_labels(carried(0, 3), {0: 0}, 0) == [False, True, True]  # a self-repaired step stays wrong


def test_after_repair_is_a_typed_recipe_switch_with_a_default():
    assert ConsensusConfig().after_repair == "correct"
    assert PIPELINE.load("demo", {"label.consensus.after_repair": "carry"}).label.consensus.after_repair == "carry"
    with pytest.raises(ValidationError):
        ConsensusConfig(after_repair="sometimes")


def test_repairs_agree_with_the_exact_arithmetic_truth():
    """Reference traces with corrected slips ("Wait, a op b = c, not w"), re-checks and uncorrected
    slips: the text-level repairs the label stage uses say self-corrected exactly when the exact
    truth does, and `after_repair: correct` labels are the exact per-step truth."""
    rng = random.Random(0)
    counts = {"self_corrected": 0, "unrepaired": 0, "clean": 0}
    for problem in generate("eval", 400, seed=5):
        slip = rng.choice([None, None, 0, 1])
        steps = trace_paragraphs(problem, rng, p_check=0.3, p_fix=0.4, slip_at=slip)
        truth = step_truth(problem.tree, steps)
        assert problem_step_truth(problem.text, steps) == truth
        exact, first = step_repairs(problem.tree, steps), first_error(truth)
        assert set(exact) == {i for i, ok in enumerate(truth) if not ok}
        exact_sc = first >= 0 and all(j is not None for j in exact.values())
        found = self_correction(steps, first)
        assert (found is not None) == exact_sc, (steps, truth, exact)
        if found is not None:
            assert found == exact
            fix = correction(steps, first, carried(first, len(steps)), True, "correct")
            assert fix.step_labels == truth
        counts["self_corrected" if exact_sc else "unrepaired" if first >= 0 else "clean"] += 1
    assert min(counts.values()) >= 40, counts  # every case is exercised


def test_exact_truth_repairs_only_wrong_results():
    tree = parse_expression("16 - 7 + 3")
    assert step_repairs(tree, CAUGHT) == {0: 1} and step_truth(tree, CAUGHT) == [False, True, True, True]
    assert step_repairs(tree, NEVER_REPAIRED) == {0: None, 1: None}
    assert step_truth(tree, NEVER_REPAIRED) == [False, False, True]
    # reducing an operation that is not on the table, a wrong restatement, a wrong conclusion:
    # errors that no later restatement of a result repairs
    assert step_repairs(tree, ["7 + 3 = 10", "Wait, 7 + 3 = 10."]) == {0: None, 1: None}
    assert step_repairs(tree, ["16 - 7 = 9, now 9 + 4", "9 + 3 = 12"]) == {0: None}
    assert step_repairs(tree, ["16 - 7 = 9, now 9 + 3", "9 + 3 = 12", "So the answer is 13."]) == {2: None}


def test_the_label_stage_writes_the_flags_labels_and_repairs(tmp_path):
    """The stage itself, with the symbolic checker as its one labeler (no engine needed)."""
    cfg = LabelConfig(
        labelers=["symbolic"],
        fidelity=FidelityConfig(info_gain=False),
        consensus=ConsensusConfig(sources=["symbolic"], min_sources=1),
    )

    def trace(tid: str, steps: list[str]) -> dict:
        answer = {"final_answer": "12", "thinking_answer": "12", "gold_answer": "12", "thinking_tokens": 10}
        return {"trace_id": tid, "problem_id": "p", **answer, "steps": [{"text": s} for s in steps]}

    stage = Label(tmp_path / "in", tmp_path / "out", cfg)
    out, _ = stage.process_chunk([trace("a", CAUGHT), trace("b", NEVER_REPAIRED)])
    caught, never = out
    assert (caught["self_corrected"], caught["rationalized"]) == (True, False)
    assert [s["label"] for s in caught["steps"]] == [False, True, True, True]
    assert json.loads(caught["provenance"])["repairs"] == {"0": 1}
    assert (never["self_corrected"], never["rationalized"]) == (False, True)
    assert [s["label"] for s in never["steps"]] == [False, False, False]
    assert "repairs" not in json.loads(never["provenance"])
    assert stage.stats["self_corrected"].total == 1 and stage.stats["rationalized"].total == 1


def labeled(tid: str, **kw) -> dict:
    return labeled_trace(tid, **{"steps": [{"text": s} for s in CAUGHT[1:]], **kw})


def test_fidelity_pairs_reject_misaligned_and_rationalized_traces_not_self_corrections():
    clean = labeled("a")
    caught = labeled(
        "b", first_error=0, first_error_symbolic=0, self_corrected=True, steps=[{"text": s} for s in CAUGHT]
    )
    rationalized = labeled("c", first_error=0, first_error_symbolic=0, rationalized=True)
    misaligned = labeled("d", thinking_answer_agrees=False)
    # consensus undecided, but the checker saw a false claim at step 0 that is never repaired
    false_claim = labeled("e", consensus="disagree", first_error=None, first_error_symbolic=0)
    false_claim["steps"] = [{"text": s} for s in NEVER_REPAIRED]
    repaired_claim = labeled("f", consensus="disagree", first_error=None, first_error_symbolic=0)
    repaired_claim["steps"] = [{"text": s} for s in CAUGHT]
    group = [clean, caught, rationalized, misaligned, false_claim, repaired_claim]
    assert [unfaithful_reason(t) for t in group] == [
        None,
        None,
        "rationalized",
        "misaligned",
        "correct_over_false_claim",
        None,
    ]
    pairs = [json.loads(p["provenance"]) for p in fidelity_pairs(group) if p]
    assert sorted((p["rejected_trace"], p["rejected_reason"]) for p in pairs) == [
        ("c", "rationalized"),
        ("d", "misaligned"),
        ("e", "correct_over_false_claim"),
    ]
    assert all(p["chosen_trace"] == "a" for p in pairs)
