"""CaT, CASPO's confidence-aware tree (exact rule not public; this is our reading of it).

Our rule. A problem keeps at most `width = max(1, n // branch)` live traces. At each step boundary
every live trace proposes `branch` candidate next steps (each from its own seed); a candidate's
step confidence is the mean token confidence C_i (DeepConf's) over the step's own tokens. The
candidates whose step confidence is below the `percentile` of this round's candidates (pooled
over the problem's live traces) are dropped, and of the survivors the `width` most confident go
on; the rest are pruned. A candidate that finishes leaves the tree as a trace (and its slot with
it: at most `width` traces come out), voting with its lowest group confidence as weight.

Step boundaries are chunk boundaries (every `chunk_tokens` tokens), not the model's own paragraph
breaks: cutting at `\\n\\n` needs stop strings, which vLLM drops from the text while keeping their
tokens, so the resubmitted text would no longer be what the model saw. A step is then a fixed
number of tokens: coarser than a reasoning step, but the same budget per branch point.

It spends about what plain sampling spends (`branch x width ~ n` candidates per round) for fewer,
more confident traces: a quality strategy, not a token saver, unless whole rounds die out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stages.engine import SamplingConfig
from stages.prune.chunked import GenerateFn, Partial, advance, sub_seed
from stages.prune.confidence import lowest_group_confidence, token_confidence, vote_weight
from stages.prune.outcome import Outcome, Pruned


def step_confidence(p: Partial, kind: str = "topk_mean") -> float:
    """Mean token confidence over the tokens of `p`'s latest chunk (its last step)."""
    conf = token_confidence(p.sample, kind)[p.new_from :]
    return float(conf.mean()) if len(conf) else float("nan")


def run(cfg, generate: GenerateFn, prompts: Sequence[str], seeds: Sequence[int], sampling: SamplingConfig):
    n, b = sampling.n, max(1, cfg.branch)
    width = max(1, n // b)
    live = [[Partial(prompt, sub_seed(seed, i), index=i) for i in range(width)] for prompt, seed in zip(prompts, seeds)]
    outcomes = [Outcome(generated=0) for _ in prompts]
    names = [width] * len(prompts)  # the next free sample index per problem (candidates get their own)
    rounds = 0
    while any(live):
        rounds += 1
        cands: list[list[Partial]] = []
        for k, ps in enumerate(live):
            row = []
            for p in ps:
                for j in range(b):
                    c = p.fork(sub_seed(p.seed, rounds, j))
                    c.index = p.index if j == 0 else names[k]
                    names[k] += j > 0
                    row.append(c)
            cands.append(row)
        advance(generate, [c for row in cands for c in row], sampling, cfg.chunk_tokens)
        for k, row in enumerate(cands):
            outcomes[k].generated += sum(c.tokens - c.new_from for c in row)
            live[k] = _select(cfg, row, outcomes[k], width - len(outcomes[k].kept))
    return outcomes


def _select(cfg, row: list[Partial], out: Outcome, slots: int) -> list[Partial]:
    """Drop this round's candidates below the threshold, keep the `slots` most confident; finished
    survivors become traces, the others go on."""
    ok = [c for c in row if c.sample is not None]
    for c in row:
        if c.sample is None:
            out.pruned.append(Pruned(c.index, None, "generation_error", c.error or "no samples"))
    if not ok:
        return []
    conf = np.array([step_confidence(c, cfg.confidence) for c in ok])
    conf = np.where(np.isnan(conf), -np.inf, conf)  # an empty step ranks last
    threshold = float(np.percentile(conf[np.isfinite(conf)], cfg.percentile)) if np.isfinite(conf).any() else -np.inf
    order = np.argsort(-conf, kind="stable")
    survivors = []
    for rank, i in enumerate(order):
        c = ok[i]
        if conf[i] < threshold:
            detail = f"step confidence {conf[i]:.4f} below the round's p{cfg.percentile:g} {threshold:.4f}"
        elif len(survivors) >= slots:
            detail = f"step confidence {conf[i]:.4f} ranked {rank + 1} of {len(ok)}; {slots} slot(s) left"
        else:
            survivors.append(c)
            continue
        spent = c.tokens - c.new_from  # its own step: the prefix it shares was counted once, earlier
        out.pruned.append(Pruned(c.index, c.sample, "pruned:cat", detail, spent))
    going = []
    for c in survivors:
        if c.done:
            out.kept.append((c.index, c.sample))
            lowest = lowest_group_confidence(token_confidence(c.sample, cfg.confidence), cfg.window)
            out.weights.append(vote_weight(lowest, cfg.confidence))
        else:
            going.append(c)
    return going
