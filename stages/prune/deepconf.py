"""DeepConf (arXiv 2508.15260): confidence-filtered voting (offline) and early stopping (online).

Offline: all `n` traces are generated (exactly as plain sampling, same seeds), the top `eta` share by
lowest group confidence is kept and votes weighted by it; the rest are pruned. It saves no
generation, only votes better (or not).

Online: per problem, `warmup` traces are generated in full; the stop threshold is the
`percentile` of their lowest group confidences (10: DeepConf-high, keep ~90%; 90: DeepConf-low,
keep ~10%). The other traces run `chunk_tokens` at a time; a trace is stopped at the first chunk
boundary after a full window's confidence fell below the threshold (the tokens generated past that
window within the chunk are spent anyway: the price of stopping at boundaries). With `consensus`
(DeepConf's adaptive sampling), a problem whose finished traces already agree by that
confidence-weighted share stops its remaining traces, or never starts them when the warm-up agrees.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stages.engine import SamplingConfig
from stages.prune.chunked import GenerateFn, Partial, advance, run_to_end, sub_seed
from stages.prune.confidence import (
    first_window_below,
    keep_top,
    lowest_group_confidence,
    token_confidence,
    vote_weight,
)
from stages.prune.outcome import Outcome, Pruned, final_answer


def trace_confidence(sample, cfg) -> float:
    return lowest_group_confidence(token_confidence(sample, cfg.confidence), cfg.window)


def trace_weight(sample, cfg) -> float:
    return vote_weight(trace_confidence(sample, cfg), cfg.confidence)


def offline(cfg, generate: GenerateFn, prompts: Sequence[str], seeds: Sequence[int], sampling: SamplingConfig):
    """Plain sampling, then the top `eta` of each problem's traces by lowest group confidence."""
    outcomes = []
    for gen in generate(prompts, sampling, seeds):
        out = Outcome()
        if gen.error or not gen.samples:
            out.pruned.append(Pruned(0, None, "generation_error", gen.error or "no samples"))
            outcomes.append(out)
            continue
        scores = [trace_confidence(s, cfg) for s in gen.samples]
        keep = set(keep_top(scores, cfg.eta))
        for i, (s, c) in enumerate(zip(gen.samples, scores)):
            if i in keep:
                out.kept.append((i, s))
                out.weights.append(vote_weight(c, cfg.confidence))
            else:
                detail = f"lowest group confidence {c:.4f} outside the top {cfg.eta:.0%} of {len(scores)}"
                out.pruned.append(Pruned(i, s, "pruned:deepconf-offline", detail))
        outcomes.append(out)
    return outcomes


def _agreement(prompt: str, finished: list[tuple[Partial, float]]) -> float:
    """The confidence-weighted share of the leading answer among finished traces (0 without any)."""
    totals: dict[str, float] = {}
    for p, w in finished:
        if (a := final_answer(prompt, p.sample)) is not None:
            totals[a] = totals.get(a, 0.0) + w
    whole = sum(w for _, w in finished)
    return max(totals.values()) / whole if totals and whole > 0 else 0.0


def online(cfg, generate: GenerateFn, prompts: Sequence[str], seeds: Sequence[int], sampling: SamplingConfig):
    n, warm = sampling.n, min(cfg.warmup, sampling.n)
    traces = [[Partial(prompt, sub_seed(seed, i), index=i) for i in range(n)] for prompt, seed in zip(prompts, seeds)]
    run_to_end(generate, [p for ps in traces for p in ps[:warm]], sampling)
    thresholds, stopped = [], {}  # stopped: id(partial) -> (reason, detail)
    for ps in traces:
        mins = [trace_confidence(p.sample, cfg) for p in ps[:warm] if p.sample is not None]
        mins = [m for m in mins if not np.isnan(m)]
        # no usable warm-up (every warm-up trace failed): nothing to calibrate on, so no stopping
        thresholds.append(float(np.percentile(mins, cfg.percentile)) if mins else -np.inf)

    def check_consensus(ps: list[Partial]) -> None:
        if cfg.consensus is None:
            return
        finished = [(p, trace_weight(p.sample, cfg)) for p in ps if p.done and p.sample and id(p) not in stopped]
        if len(finished) < warm:
            return
        share = _agreement(ps[0].prompt, finished)
        if share >= cfg.consensus:
            for p in ps:
                if not p.done:
                    p.done = True
                    what = "never started" if p.sample is None else f"stopped after {p.tokens} tokens"
                    stopped[id(p)] = ("pruned:deepconf-consensus", f"{what}: finished traces agree {share:.0%}")

    for ps in traces:
        check_consensus(ps)
    owner = {id(p): k for k, ps in enumerate(traces) for p in ps}
    rest = [p for ps in traces for p in ps[warm:]]
    while live := [p for p in rest if not p.done]:
        advance(generate, live, sampling, cfg.chunk_tokens)
        for p in live:
            if p.sample is None:
                continue
            k = owner[id(p)]
            conf = token_confidence(p.sample, cfg.confidence)
            at = first_window_below(conf, cfg.window, thresholds[k], start=p.new_from)
            if at is not None:
                p.done = True
                stopped[id(p)] = (
                    "pruned:deepconf",
                    f"the window ending at token {at} fell below {thresholds[k]:.4f}",
                )
        for ps in traces:
            check_consensus(ps)
    return [_collect(ps, stopped, cfg) for ps in traces]


def _collect(ps: list[Partial], stopped: dict, cfg) -> Outcome:
    out = Outcome()
    for p in ps:
        if id(p) in stopped:
            out.pruned.append(Pruned(p.index, p.sample, *stopped[id(p)]))
        elif p.sample is None:
            out.pruned.append(Pruned(p.index, None, "generation_error", p.error or "no samples"))
        else:
            out.kept.append((p.index, p.sample))
            out.weights.append(trace_weight(p.sample, cfg))
    return out
