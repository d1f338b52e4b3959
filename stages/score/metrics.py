"""Evaluation metrics as pure functions of per-sample results: answers, agreement, calibration.

Every figure an evaluation reports comes with a bootstrap 95% interval over problems (samples of
one problem are not independent, so problems are what is resampled). The formulas are the
standard ones: unbiased pass@k (Chen et al. 2021, the HumanEval paper), majority vote at k,
AUROC as the Mann-Whitney probability that a random positive outscores a random negative (ties
count one half), and expected calibration error over equal-width confidence bins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from math import comb

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `c` correct among `n` samples: 1 - C(n-c, k) / C(n, k)."""
    if not 0 < k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 < k <= n and 0 <= c <= n (n={n}, c={c}, k={k})")
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> bool:
    """maj@k of one problem: is the most frequent answer among the first `k` samples right? Samples
    without an answer do not vote; a tie goes to the answer seen first; no answer at all is wrong."""
    votes = Counter(a for a in answers[:k] if a is not None)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(a for a in answers[:k] if a is not None and votes[a] == top)
    return bool(next(ok for a, ok in zip(answers, correct) if a == winner))


def bootstrap_interval(
    values: Sequence[float],
    stat: Callable[[np.ndarray], float] = np.mean,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(estimate, low, high): `stat` of the per-problem `values` and its percentile bootstrap
    interval, resampling problems with replacement. NaN values (a problem the metric does not
    apply to) are dropped first."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if not len(x):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = np.array([stat(x[rng.integers(0, len(x), len(x))]) for _ in range(resamples)])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(stat(x)), float(low), float(high)


def bootstrap_pooled(
    groups: Sequence[tuple[np.ndarray, np.ndarray]],
    stat: Callable[[np.ndarray, np.ndarray], float],
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(estimate, low, high) of `stat(scores, labels)` over items pooled from per-problem groups
    (e.g. every step of a problem's traces), resampling problems with replacement; draws where
    the statistic is undefined (one class only) are left out."""
    if not groups:
        return float("nan"), float("nan"), float("nan")
    pool = lambda idx: (np.concatenate([groups[i][0] for i in idx]), np.concatenate([groups[i][1] for i in idx]))  # noqa: E731
    rng = np.random.default_rng(seed)
    draws = np.array([stat(*pool(rng.integers(0, len(groups), len(groups)))) for _ in range(resamples)])
    draws = draws[~np.isnan(draws)]
    estimate = stat(*pool(range(len(groups))))
    if not len(draws):
        return float(estimate), float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(estimate), float(low), float(high)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half; NaN when
    either class is empty (a model right on every step has no calibration to rank)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return float("nan")
    _, which, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[which]  # tied scores share their average rank
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE: over equal-width bins of confidence in [0, 1], the sample-weighted mean of
    |accuracy - mean confidence| (a confidence of exactly 1 falls in the last bin)."""
    conf, ok = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    if not len(conf):
        return float("nan")
    if conf.min() < 0 or conf.max() > 1:
        raise ValueError("confidences must be probabilities in [0, 1]")
    which = np.minimum((conf * bins).astype(int), bins - 1)
    gaps = [abs(ok[which == b].mean() - conf[which == b].mean()) * (which == b).mean() for b in np.unique(which)]
    return float(sum(gaps))
