"""The evaluation summary on hand-made labeled traces whose every figure is known."""

from __future__ import annotations

import math

import pytest

from stages.score.summary import summarize


def trace(pid: str, i: int, answer: str | None, right: bool, thinking_right: bool, first_error: int | None, conf):
    """A labeled trace with steps of the given confidences (probabilities) and 10 thinking tokens per step."""
    return {
        "trace_id": f"{pid}-{i}", "problem_id": pid, "sample_index": i,
        "final_answer": answer, "final_correct": right, "thinking_correct": thinking_right,
        "thinking_answer_agrees": None if answer is None else thinking_right == right,
        "first_error": first_error, "answer_confidence": math.log(0.9 if right else 0.3),
        "steps": [{"mean_logprob": math.log(c)} for c in conf], "thinking_tokens": 10 * len(conf),
    }  # fmt: skip


# p1: two right of four, one unanswered; p2: none right, "3" the most frequent wrong answer.
# Right steps are confident (0.9), first wrong steps unsure (0.2); later steps carry the error.
TRACES = [
    trace("p1", 0, "7", True, True, -1, [0.9, 0.9]),
    trace("p1", 1, "7", True, True, -1, [0.9, 0.9]),
    trace("p1", 2, "8", False, True, 1, [0.9, 0.2, 0.95]),  # thought 7, wrote 8
    trace("p1", 3, None, False, False, None, [0.9]),
    trace("p2", 0, "1", False, False, 0, [0.2, 0.9, 0.9, 0.9]),
    trace("p2", 1, "2", False, False, 0, [0.2, 0.9, 0.9, 0.9]),
    trace("p2", 2, "3", False, False, 2, [0.9, 0.9, 0.2, 0.9]),
    trace("p2", 3, "3", False, False, 2, [0.9, 0.9, 0.2, 0.9]),
]


def test_answers_pass_at_k_and_majority_vote():
    a = summarize(TRACES, ks=(1, 2, 4))["answers"]
    assert a["pass@1"][0] == pytest.approx((2 / 4 + 0) / 2)
    assert a["pass@2"][0] == pytest.approx((1 - 1 / 6 + 0) / 2)  # p1: 1 - C(2,2)/C(4,2)
    assert a["pass@4"][0] == pytest.approx(0.5)
    assert a["maj@4"][0] == pytest.approx(0.5) and a["maj@1"][0] == pytest.approx(0.5)  # p1's 7 wins, p2's 3 loses
    assert a["extraction_failures"][0] == pytest.approx((1 / 4 + 0) / 2)
    # maj@all votes over whatever a problem has: p1 with its 8 dropped (as a pruned strategy may)
    # still votes 7; p2's 3 still loses
    pruned = [t for t in TRACES if not (t["problem_id"] == "p1" and t["sample_index"] == 2)]
    assert summarize(pruned, ks=(1,))["answers"]["maj@all"][0] == pytest.approx(0.5)
    low, high = a["pass@1"][1:]
    assert low <= a["pass@1"][0] <= high


def test_thinking_table_and_agreement():
    t = summarize(TRACES, ks=(1,))["thinking"]
    assert t["table_counts"] == {
        "both_right": 2, "knows_but_says_otherwise": 1, "right_answer_wrong_thinking": 0, "both_wrong": 5,
    }  # fmt: skip
    assert t["thinking_accuracy"][0] == pytest.approx((3 / 4 + 0) / 2)
    # agreement among answered samples: p1 2 of 3 (the "8" disagrees), p2 4 of 4
    assert t["agreement"][0] == pytest.approx((2 / 3 + 1) / 2)


def test_first_errors_from_consensus_or_exact_truth():
    consensus = summarize(TRACES, ks=(1,))["first_errors"]
    assert consensus["first_error_source"] == "consensus labels"
    assert consensus["first_error_rate"][0] == pytest.approx((1 / 3 + 1) / 2)  # p1's unlabeled trace is left out
    assert consensus["first_error_position"][0] == pytest.approx((1 / 3 + (0 + 0 + 0.5 + 0.5) / 4) / 2)
    truth = {t["trace_id"]: -1 for t in TRACES}  # an exact check that finds no error anywhere
    exact = summarize(TRACES, ks=(1,), truth=truth)["first_errors"]
    assert exact["first_error_source"] == "exact truth" and exact["first_error_rate"][0] == 0.0


def test_calibration_leaves_out_steps_after_the_first_error():
    c = summarize(TRACES, ks=(1,))["calibration"]
    # labeled steps: right ones at 0.9, first wrong ones at 0.2, the steps after them left out
    # (two of them at 0.9 would otherwise count as confident errors)
    assert c["step_auroc"][0] == pytest.approx(1.0)
    assert c["answer_auroc"][0] == pytest.approx(1.0)  # right answers at 0.9, wrong at 0.3
    assert c["answer_ece"][0] == pytest.approx((2 * 0.1 + 6 * 0.3) / 8)


def test_overthinking_bins_cover_every_sample():
    o = summarize(TRACES, ks=(1,))["overthinking"]
    assert sum(b["samples"] for b in o["accuracy_by_length"]) == len(TRACES)
    assert o["thinking_tokens_right"] == 20 and o["thinking_tokens_wrong"] == pytest.approx((30 + 10 + 4 * 40) / 6)


def test_deep_thinking_ratio_summary_by_hand():
    # the two right traces think deep (0.6), the wrong ones shallow (0.2); p1-3 has no ratio
    ratios = {t["trace_id"]: (0.6 if t["final_correct"] else 0.2) for t in TRACES if t["trace_id"] != "p1-3"}
    d = summarize(TRACES, ks=(1,), ratios=ratios)["depth"]
    assert d["deep_thinking_ratio"][0] == pytest.approx(((0.6 + 0.6 + 0.2) / 3 + 0.2) / 2)  # mean of problem means
    assert (d["dtr_right"], d["dtr_wrong"]) == pytest.approx((0.6, 0.2))
    assert d["dtr_correctness_r"][0] == pytest.approx(1.0)  # correctness is a function of the ratio here
    assert [(b["samples"], b["accuracy"]) for b in d["accuracy_by_dtr"]] == [(5, 0.0), (2, 1.0)]
    assert "depth" not in summarize(TRACES, ks=(1,), ratios={t["trace_id"]: None for t in TRACES})
