"""A model's evaluation summary from its labeled traces: answers, thinking, first errors, calibration.

Pure functions of `labeled_traces` rows (one model's n samples per problem), each figure with a
bootstrap 95% interval over problems (`metrics.py`). First errors and step correctness come from
`truth` when the problem set has exact step truth (trace id -> first wrong step, -1 for none),
else from the label stage's consensus; the summary says which (`first_error_source`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from stages.score.metrics import (
    auroc,
    bootstrap_interval,
    bootstrap_pooled,
    expected_calibration_error,
    majority_correct,
    pass_at_k,
)

Interval = tuple[float, float, float]  # estimate, low, high


def by_problem(traces: list[dict]) -> list[list[dict]]:
    """Each problem's traces in sample order, problems in id order."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for t in traces:
        groups[t["problem_id"]].append(t)
    return [sorted(groups[p], key=lambda t: t["sample_index"]) for p in sorted(groups)]


def _share(rows: list[dict], test: Callable[[dict], bool | None]) -> float:
    """Share of `rows` where `test` is true, among those where it is decided (not None)."""
    decided = [v for v in map(test, rows) if v is not None]
    return sum(decided) / len(decided) if decided else math.nan


def answers(problems: list[list[dict]], ks: tuple[int, ...]) -> dict[str, Interval]:
    """pass@1, unbiased pass@k and maj@k for each k no larger than every problem's n, maj@all over
    each problem's samples, and the share of samples whose final answer could not be extracted."""
    n = min(len(g) for g in problems)
    out = {"pass@1": bootstrap_interval([_share(g, lambda t: t["final_correct"]) for g in problems])}
    right = [[bool(t["final_correct"]) for t in g] for g in problems]
    for k in (k for k in ks if 1 < k <= n):
        out[f"pass@{k}"] = bootstrap_interval([pass_at_k(len(r), sum(r), k) for r in right])
    for k in (k for k in ks if k <= n):
        votes = [majority_correct([t["final_answer"] for t in g], r, k) for g, r in zip(problems, right)]
        out[f"maj@{k}"] = bootstrap_interval([float(v) for v in votes])
    # over every sample a problem has: what a pruned generation strategy votes over (its counts vary)
    votes = [majority_correct([t["final_answer"] for t in g], r, len(g)) for g, r in zip(problems, right)]
    out["maj@all"] = bootstrap_interval([float(v) for v in votes])
    out["extraction_failures"] = bootstrap_interval([_share(g, lambda t: t["final_answer"] is None) for g in problems])
    return out


def thinking(problems: list[list[dict]]) -> dict:
    """Thinking accuracy, thinking-answer agreement, and the 2x2 table of thinking right/wrong by
    answer right/wrong (as shares of all samples): `knows_but_says_otherwise` (right thinking,
    wrong answer) and `right_answer_wrong_thinking`."""
    cells = {
        "both_right": lambda t: bool(t["thinking_correct"]) and t["final_correct"],
        "knows_but_says_otherwise": lambda t: bool(t["thinking_correct"]) and not t["final_correct"],
        "right_answer_wrong_thinking": lambda t: not t["thinking_correct"] and t["final_correct"],
        "both_wrong": lambda t: not t["thinking_correct"] and not t["final_correct"],
    }
    return {
        "thinking_accuracy": bootstrap_interval([_share(g, lambda t: bool(t["thinking_correct"])) for g in problems]),
        "agreement": bootstrap_interval([_share(g, lambda t: t["thinking_answer_agrees"]) for g in problems]),
        "table": {name: bootstrap_interval([_share(g, cell) for g in problems]) for name, cell in cells.items()},
        "table_counts": {name: sum(cell(t) for g in problems for t in g) for name, cell in cells.items()},
    }


def first_errors(problems: list[list[dict]], truth: dict[str, int] | None = None) -> dict:
    """Share of traces with a wrong step, and where the first one falls (its index over the
    trace's step count), among traces whose first error is known."""
    first = (lambda t: truth.get(t["trace_id"])) if truth is not None else (lambda t: t["first_error"])

    def wrong(t: dict) -> bool | None:
        return None if first(t) is None else first(t) >= 0

    def position(g: list[dict]) -> float:
        spots = [first(t) / len(t["steps"]) for t in g if wrong(t) and t["steps"]]
        return float(np.mean(spots)) if spots else math.nan

    return {
        "first_error_source": "exact truth" if truth is not None else "consensus labels",
        "first_error_rate": bootstrap_interval([_share(g, wrong) for g in problems]),
        "first_error_position": bootstrap_interval([position(g) for g in problems]),
    }


def _first_error_label(first_error: int | None, i: int) -> bool | None:
    """Step `i`'s correctness from its trace's first error: right before it, wrong at it, unknown
    after it (and where the first error is unknown)."""
    if first_error is None or (0 <= first_error < i):
        return None
    return first_error < 0 or i < first_error


def _step_pairs(g: list[dict], truth: dict[str, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) of every step with a known label and a confidence, for one problem:
    steps after a trace's first error are left out (they carry the error forward, so their label
    says nothing of their own confidence)."""
    conf, ok = [], []
    for t in g:
        cut = truth.get(t["trace_id"]) if truth is not None else t["first_error"]
        for i, s in enumerate(t["steps"]):
            label = _first_error_label(cut, i)
            if label is None or s["mean_logprob"] is None:
                continue
            conf.append(math.exp(s["mean_logprob"]))
            ok.append(bool(label))
    return np.asarray(conf, dtype=np.float64), np.asarray(ok, dtype=bool)


def calibration(problems: list[list[dict]], truth: dict[str, int] | None = None) -> dict[str, Interval]:
    """Step confidence (exp of the step's mean token logprob) against step correctness, and answer
    confidence (exp of the answer span's mean logprob) against final correctness: AUROC and ECE."""
    steps = [_step_pairs(g, truth) for g in problems]
    answer = [
        (
            np.asarray([math.exp(t["answer_confidence"]) for t in g if t["answer_confidence"] is not None]),
            np.asarray([t["final_correct"] for t in g if t["answer_confidence"] is not None], dtype=bool),
        )
        for g in problems
    ]
    return {
        "step_auroc": bootstrap_pooled(steps, auroc),
        "step_ece": bootstrap_pooled(steps, expected_calibration_error),
        "answer_auroc": bootstrap_pooled(answer, auroc),
        "answer_ece": bootstrap_pooled(answer, expected_calibration_error),
    }


def accuracy_by_bins(values: np.ndarray, right: np.ndarray, bins: int) -> list[dict]:
    """Accuracy of samples binned by `values` (quantile edges over all samples)."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1))) if len(values) else np.array([])
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, max(len(edges) - 2, 0))
    return [
        {"from": float(edges[b]), "to": float(edges[b + 1]), "samples": int((which == b).sum()),
         "accuracy": float(right[which == b].mean()) if (which == b).any() else math.nan}
        for b in range(max(len(edges) - 1, 0))
    ]  # fmt: skip


def overthinking(problems: list[list[dict]], bins: int = 4) -> dict:
    """Accuracy by thinking-length bin, and the mean thinking tokens of right and of wrong samples."""
    traces = [t for g in problems for t in g]
    lengths = np.asarray([t["thinking_tokens"] for t in traces], dtype=np.float64)
    right = np.asarray([t["final_correct"] for t in traces], dtype=bool)
    return {
        "accuracy_by_length": accuracy_by_bins(lengths, right, bins),
        "thinking_tokens_right": float(lengths[right].mean()) if right.any() else math.nan,
        "thinking_tokens_wrong": float(lengths[~right].mean()) if (~right).any() else math.nan,
    }


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def deep_thinking(problems: list[list[dict]], ratios: dict[str, float | None], bins: int = 4) -> dict:
    """Deep-thinking ratio (arXiv 2602.13517): its mean per problem, its mean over right and over
    wrong samples, accuracy by DTR bin, and its correlation with correctness over samples."""
    pairs = [
        (np.asarray([ratios[t["trace_id"]] for t in g if ratios.get(t["trace_id"]) is not None]),
         np.asarray([t["final_correct"] for t in g if ratios.get(t["trace_id"]) is not None], dtype=np.float64))
        for g in problems
    ]  # fmt: skip
    dtr = np.concatenate([x for x, _ in pairs]) if pairs else np.array([])
    right = np.concatenate([y for _, y in pairs]).astype(bool) if pairs else np.array([], dtype=bool)
    return {
        "deep_thinking_ratio": bootstrap_interval([float(x.mean()) if len(x) else math.nan for x, _ in pairs]),
        "dtr_right": float(dtr[right].mean()) if right.any() else math.nan,
        "dtr_wrong": float(dtr[~right].mean()) if (~right).any() else math.nan,
        "accuracy_by_dtr": accuracy_by_bins(dtr, right, bins),
        "dtr_correctness_r": bootstrap_pooled(pairs, _correlation),
    }


def summarize(
    traces: list[dict],
    ks: tuple[int, ...] = (1, 4, 8),
    truth: dict[str, int] | None = None,
    ratios: dict[str, float | None] | None = None,
) -> dict:
    """Every figure of one model's evaluation from its labeled traces (and deep-thinking
    `ratios` by trace id, when the depth stage computed them)."""
    problems = by_problem(traces)
    if not problems:
        raise ValueError("no traces to evaluate")
    return {
        "problems": len(problems),
        "samples": len(traces),
        "answers": answers(problems, ks),
        "thinking": thinking(problems),
        "first_errors": first_errors(problems, truth),
        "calibration": calibration(problems, truth),
        "overthinking": overthinking(problems),
        **(
            {"depth": deep_thinking(problems, ratios)} if ratios and any(v is not None for v in ratios.values()) else {}
        ),
    }
