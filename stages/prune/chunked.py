"""Chunked generation: traces advanced `chunk_tokens` at a time, so a strategy can look at a running
statistic between chunks and stop (or branch) a trace.

vLLM cannot stop a sequence on a running statistic without a patched build, so each chunk is an
ordinary engine call, and a trace that goes on is resubmitted as prompt + its text so far. Prefix
caching serves the resubmitted prefix in whole KV blocks (up to a block minus one token is
recomputed per resubmission), and each boundary drains the batch (the longest chunk of the round
sets its pace): `thoughtmill bench prune` measures what that costs (its `sample-chunked` arm).

The text is resubmitted, not the token ids (the `Engine` protocol takes text): exact for the
tiny reasoner's character tokenizer; for a BPE tokenizer a boundary inside a word may re-tokenize
the prefix differently from how it was sampled (the same text, a slightly different context).

Every trace carries its own seed, and each of its chunks is seeded from it and the chunk's index,
so a trace is reproducible whatever else is in the batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from stages.engine import Generation, Sample, SamplingConfig
from stages.prune.outcome import sample_tokens

# (prompts, sampling, seeds) -> one Generation per prompt: the stage's isolating `_generate`
GenerateFn = Callable[[Sequence[str], SamplingConfig, Sequence[int]], list[Generation]]


def sub_seed(seed: int, *path: int) -> int:
    """A 32-bit seed derived from `seed` and a path (trace index, chunk index, branch, ...)."""
    key = "\x00".join(str(x) for x in (seed, *path))
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


@dataclass
class Partial:
    """A trace being generated: its prompt, the text so far as one `Sample`, and its seed."""

    prompt: str
    seed: int
    index: int = 0  # the sample index its trace will have
    sample: Sample | None = None
    chunks: int = 0
    done: bool = False
    error: str | None = None
    new_from: int = 0  # token index where the last chunk began

    @property
    def tokens(self) -> int:
        return sample_tokens(self.sample)

    def fork(self, seed: int) -> Partial:
        """A copy that continues independently from here (CaT's candidate next steps)."""
        return replace(self, seed=seed)


def concat(a: Sample | None, b: Sample) -> Sample:
    """`b` generated after `a` as one sample: offsets are char offsets into the joined text, so
    `b`'s are shifted by `a`'s text length; the finish reason is `b`'s (the trace's latest)."""
    if a is None:
        return b
    shift = len(a.text)
    return Sample(
        text=a.text + b.text,
        token_ids=a.token_ids + b.token_ids,
        finish_reason=b.finish_reason,
        logprobs=a.logprobs + b.logprobs,
        entropies=a.entropies + b.entropies,
        offsets=a.offsets + [o + shift for o in b.offsets],
        reasoning=None,
        topk_mean=a.topk_mean + b.topk_mean,
    )


def advance(generate: GenerateFn, partials: Sequence[Partial], sampling: SamplingConfig, chunk_tokens: int) -> int:
    """One chunk (at most `chunk_tokens`, never past `sampling.max_tokens`) for every unfinished
    partial, in one engine call; returns the tokens generated. A partial is done when the model
    stopped, its token budget is spent, or the engine refused the resubmission (context full:
    the trace keeps what it has, finishing on `length`)."""
    todo = [p for p in partials if not p.done]
    if not todo:
        return 0
    chunk = sampling.model_copy(update={"n": 1})
    groups: dict[int, list[Partial]] = {}
    for p in todo:  # requests with the same room share one call's parameters
        groups.setdefault(min(chunk_tokens, sampling.max_tokens - p.tokens), []).append(p)
    spent = 0
    for room, group in groups.items():
        gens = generate(
            [p.prompt + (p.sample.text if p.sample else "") for p in group],
            chunk.model_copy(update={"max_tokens": room}),
            [sub_seed(p.seed, p.chunks) for p in group],
        )
        for p, g in zip(group, gens):
            p.chunks += 1
            if g.error or not g.samples:
                p.done, p.new_from = True, p.tokens
                if p.sample is None:
                    p.error = g.error or "no samples"
                else:  # a copy: a CaT fork shares its parent's sample object
                    p.sample = replace(p.sample, finish_reason="length")
                continue
            s = g.samples[0]
            p.new_from = p.tokens
            p.sample = concat(p.sample, s)
            spent += sample_tokens(s)
            p.done = s.finish_reason != "length" or p.tokens >= sampling.max_tokens or not sample_tokens(s)
    return spent


def run_to_end(generate: GenerateFn, partials: Sequence[Partial], sampling: SamplingConfig) -> int:
    """Every unfinished partial generated to its end in one call (no statistic to watch)."""
    return advance(generate, partials, sampling, sampling.max_tokens)
