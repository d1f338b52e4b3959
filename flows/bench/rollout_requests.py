"""The two levers `bench cost` bounds instead of building: shorter rollout budgets, and request
orders that keep shared prefixes together.

A shorter budget saves only the tokens a rollout would generate past it, and a better order only
the prefill the prefix cache does not serve already. Both are measured on the demo recipe's label
rollouts over the cost bench's traces: the share of rollout tokens in rollouts cut at
`max_tokens`, the share past twice the work the trace itself had left after the prefix (what a
budget of 2x the remaining work would cut), and the share of prompt tokens the prefix cache
served with the requests in the order the labeler sends them (a trace's prefixes together) and in
a shuffled order.
"""

from __future__ import annotations

import random

from flows.pipeline import load_recipe
from stages.label.labelers.mc import MonteCarloLabeler
from stages.segment import step_prefix


class Recording:
    """An engine that keeps (prompt, tokens generated, finish reason) of every sample."""

    def __init__(self, engine) -> None:
        self.engine, self.samples = engine, []

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def generate(self, prompts, sampling, seeds=None):
        out = self.engine.generate(prompts, sampling, seeds)
        self.samples += [(g.prompt, len(s.offsets), s.finish_reason) for g in out for s in g.samples]
        return out


def cache_hit_share(engine, labeler: MonteCarloLabeler, traces: list[dict]) -> float:
    engine.llm.reset_prefix_cache()
    before = engine.cache_stats()
    labeler.label(traces)
    after = engine.cache_stats()
    return (after["hits"] - before["hits"]) / max(after["queries"] - before["queries"], 1)


def rollout_requests(engine, traces: list[dict]) -> dict:
    cfg = load_recipe("demo", {}).label.rollouts
    rec = Recording(engine)
    labeler = MonteCarloLabeler(rec, cfg)
    submitted = cache_hit_share(engine, labeler, traces)
    # what the trace had left to write after each prefix a rollout starts from: its tokens
    left = {}
    for t in traces:
        whole = t["prompt"] + t["completion"]
        for i in range(-1, len(t["steps"])):
            prefix = step_prefix(t, i)
            left.setdefault(prefix, engine.count_tokens(whole[len(prefix) :]))
    total = sum(n for _, n, _ in rec.samples)
    capped = sum(n for _, n, why in rec.samples if why == "length")
    past = sum(max(0, n - 2 * left[p]) for p, n, _ in rec.samples)
    shuffled = random.Random(0).sample(traces, len(traces))  # seed fixed before any run
    return {
        "rollout_tokens": total,
        "capped_share": capped / max(total, 1),
        "past_twice_left_share": past / max(total, 1),
        "cache_hit_submitted": submitted,
        "cache_hit_shuffled": cache_hit_share(engine, MonteCarloLabeler(engine, cfg), shuffled),
    }
