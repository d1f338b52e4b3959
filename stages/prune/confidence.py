"""DeepConf's confidence statistics (arXiv 2508.15260) as pure functions of per-token arrays.

Token confidence C_i = -(mean of the top-k logprobs at position i): high when the model's top-k
alternatives are all unlikely except the chosen one (a peaked distribution), low when it hesitates.
It describes the distribution, not the token drawn from it: a sampled slip (a low-probability
token drawn at temperature 1) leaves it unchanged. The `chosen` variant is the drawn token's own
logprob, which a slip lowers.
Group confidence is the mean of C over a sliding window of `w` tokens; a trace's lowest group
confidence is the minimum over its windows (a trace shorter than `w` is one window). The vote
weights a trace's answer by its confidence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from stages.engine import Sample
from stages.prune.outcome import sample_tokens


def token_confidence(sample: Sample, kind: str = "topk_mean") -> np.ndarray:
    """Every token's confidence in `sample`: DeepConf's C_i (`topk_mean`), or the chosen token's
    logprob (`chosen`). C_i needs the engine's top-k means (`Sample.topk_mean`): the chosen
    token's logprob is a different statistic, and silently substituting it would move every
    threshold."""
    if kind == "chosen":
        return np.asarray(sample.logprobs, dtype=np.float64)
    if len(sample.topk_mean) != sample_tokens(sample) or not sample.token_ids:
        raise ValueError(
            "confidence pruning needs the engine's per-token top-k logprob means (Sample.topk_mean); "
            f"this sample has {len(sample.topk_mean)} for {sample_tokens(sample)} tokens (set sampling.logprobs >= 1 "
            "and use the vllm backend)"
        )
    return -np.asarray(sample.topk_mean, dtype=np.float64)


def group_confidences(conf: Sequence[float], window: int) -> np.ndarray:
    """Mean of `conf` over every window of `window` consecutive tokens (len - window + 1 values);
    one value, the mean of all, when there are fewer tokens than `window`; none for no tokens."""
    c = np.asarray(conf, dtype=np.float64)
    if not len(c):
        return c
    if len(c) < window:
        return np.array([c.mean()])
    sums = np.cumsum(np.concatenate([[0.0], c]))
    return (sums[window:] - sums[:-window]) / window


def lowest_group_confidence(conf: Sequence[float], window: int) -> float:
    """A trace's lowest group confidence (NaN for an empty trace)."""
    g = group_confidences(conf, window)
    return float(g.min()) if len(g) else float("nan")


def first_window_below(conf: Sequence[float], window: int, threshold: float, start: int = 0) -> int | None:
    """The token count at which online DeepConf stops a trace: the end (exclusive) of the first
    full window whose group confidence is below `threshold`, looking only at windows ending after
    the first `start` tokens (those were checked at an earlier chunk boundary); None if none is.
    Partial windows (fewer than `window` tokens generated) are never judged: the paper starts
    checking once a window is full."""
    c = np.asarray(conf, dtype=np.float64)
    if len(c) < window:
        return None
    g = group_confidences(c, window)  # g[j] covers tokens j .. j + window - 1
    first_end = max(start + 1, window)  # windows ending (exclusive) at first_end or later
    below = np.nonzero(g[first_end - window :] < threshold)[0]
    return int(below[0] + first_end) if len(below) else None


def vote_weight(lowest: float, kind: str = "topk_mean") -> float:
    """A trace's vote weight from its lowest group confidence: C_i is positive and used as is; a
    mean logprob (`chosen`) is negative, so it votes with its geometric-mean probability (a
    negative weight would favour the answer with fewer votes). No tokens: no weight."""
    if np.isnan(lowest):
        return 0.0
    return float(np.exp(lowest)) if kind == "chosen" else float(lowest)


def weighted_vote(answers: Sequence[str | None], weights: Sequence[float]) -> str | None:
    """The answer with the largest total weight (answerless traces do not vote; a tie goes to the
    answer seen first); None without any answer. Equal weights give plain majority voting."""
    totals: dict[str, float] = defaultdict(float)
    for a, w in zip(answers, weights):
        if a is not None:
            totals[a] += float(w)
    if not totals:
        return None
    top = max(totals.values())
    return next(a for a in answers if a is not None and totals[a] == top)


def keep_top(scores: Sequence[float], eta: float) -> list[int]:
    """Indices of the top `eta` share of `scores` (at least one), best first; NaN scores last."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    k = max(1, int(round(eta * len(s)))) if len(s) else 0
    return [int(i) for i in np.argsort(-s, kind="stable")[:k]]
