"""Throughput and memory of segmentation + answer extraction on synthetic R1-length traces.

The generate stage runs `split_thinking`, `segment` and `extract_answer` on every sampled trace,
so this measures that work alone, streaming (one trace at a time, nothing kept), on one core.
A small pool of synthetic traces is generated up front and cycled, so the timing measures the
segmenter rather than the synthetic generator.
"""

from __future__ import annotations

import time

import numpy as np
import psutil

from stages.answers import extract_answer, split_thinking
from stages.segment import SegmentConfig, segment

_PROSE = (
    "Let me think about what the problem is asking for here.",
    "So the key quantity is the total, and I need to be careful with the units.",
    "I should double-check the setup before going further.",
    "That seems consistent with what I found before.",
    "Hmm, maybe there is a simpler way to see this.",
    "Let me organise the computation step by step.",
)
_WAIT = (
    "Wait, I think I made a mistake in the previous line.",
    "Wait, let me re-check that multiplication.",
    "Wait, that does not match the earlier result.",
)


def _paragraph(rng: np.random.Generator, target: int) -> str:
    parts: list[str] = [_WAIT[rng.integers(len(_WAIT))]] if rng.random() < 0.15 else []
    size = sum(len(p) + 1 for p in parts)
    while size < target:
        if rng.random() < 0.5:
            a, b = (int(x) for x in rng.integers(2, 999, size=2))
            op = "+-*"[rng.integers(3)]
            value = a + b if op == "+" else a - b if op == "-" else a * b
            part = f"Computing {a} {op} {b} = {value}."
        else:
            part = _PROSE[rng.integers(len(_PROSE))]
        parts.append(part)
        size += len(part) + 1
    return " ".join(parts)


def synthetic_trace(rng: np.random.Generator, n_tokens: int = 4000) -> dict:
    """An R1-like completion of about `n_tokens` tokens (~4 chars each, ~60 paragraphs), with
    token offsets (int32) and per-token logprobs and entropies (float32)."""
    answer = int(rng.integers(0, 10_000))
    tail = f"\n</think>\n\nThe answer is \\boxed{{{answer}}}."
    n_chars = 4 * n_tokens
    n_paragraphs = max(1, round(60 * n_tokens / 4000))
    body: list[str] = []
    size = 0
    while size < n_chars - len(tail) - 8:
        para = _paragraph(rng, max(20, (n_chars - len(tail)) // n_paragraphs - 30))  # parts overshoot
        body.append(para)
        size += len(para) + 2
    completion = "<think>\n" + "\n\n".join(body) + tail
    lengths = rng.integers(1, 8, size=len(completion) // 2 + 8)  # mean 4 chars per token
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    offsets = offsets[offsets < len(completion)].astype(np.int32)
    n = len(offsets)
    return {
        "completion": completion,
        "answer": str(answer),
        "token_offsets": offsets,
        "token_logprobs": (-rng.exponential(0.4, size=n)).astype(np.float32),
        "token_entropies": rng.exponential(0.6, size=n).astype(np.float32),
    }


def _process(trace: dict, cfg: SegmentConfig) -> None:
    split = split_thinking(trace["completion"])
    segment(
        split.thinking,
        split.thinking_start,
        trace["token_offsets"],
        trace["token_logprobs"],
        trace["token_entropies"],
        cfg,
    )
    extract_answer(split.answer)
    extract_answer(split.thinking)


def bench_segmentation(n_traces: int, seed: int = 0, pool_size: int = 200) -> dict:
    """Stream `n_traces` traces through split/segment/extract (single process, so traces/s is
    per core); `peak_rss_mb` is the largest current RSS sampled every 1000 traces."""
    rng = np.random.default_rng(seed)
    pool = [synthetic_trace(rng) for _ in range(max(1, min(pool_size, n_traces)))]
    cfg = SegmentConfig()
    proc = psutil.Process()
    base_rss = peak_rss = proc.memory_info().rss
    t0 = time.perf_counter()
    for i in range(n_traces):
        _process(pool[i % len(pool)], cfg)
        if i % 1000 == 999:
            peak_rss = max(peak_rss, proc.memory_info().rss)
    seconds = time.perf_counter() - t0
    peak_rss = max(peak_rss, proc.memory_info().rss)
    return {
        "traces": n_traces,
        "seconds": round(seconds, 3),
        "traces_per_s_per_core": round(n_traces / seconds, 1) if seconds > 0 else float("inf"),
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "rss_growth_mb": round((peak_rss - base_rss) / 2**20, 1),
    }


def main() -> None:
    small, large = bench_segmentation(10_000), bench_segmentation(100_000)
    for r in (small, large):
        print(
            f"segmentation: {r['traces']} traces in {r['seconds']}s = {r['traces_per_s_per_core']} traces/s/core, "
            f"peak RSS {r['peak_rss_mb']} MB (+{r['rss_growth_mb']} MB during the run)"
        )
    print(f"peak-memory ratio 100k/10k: {large['peak_rss_mb'] / small['peak_rss_mb']:.3f}")


if __name__ == "__main__":
    main()
