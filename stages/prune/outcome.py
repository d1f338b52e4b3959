"""What a strategy hands back per problem: the traces it keeps (with vote weights) and the ones it
pruned, each with its reason and the tokens it cost, so nothing it generated disappears silently."""

from __future__ import annotations

from dataclasses import dataclass, field

from stages.answers import extract_answer, prompt_opening, split_thinking
from stages.engine import Sample


def sample_tokens(sample: Sample | None) -> int:
    """Tokens in a sample: its offsets (an HTTP engine returns no token ids, only logprobs and
    offsets), else its token ids."""
    return 0 if sample is None else len(sample.offsets) or len(sample.token_ids)


@dataclass
class Pruned:
    index: int  # the sample index the trace had
    sample: Sample | None  # what was generated before it was stopped (None: never started)
    reason: str  # `pruned:<strategy>`, or `generation_error`
    detail: str
    spent: int | None = None  # tokens it cost on its own, when it shares a prefix (a CaT branch)

    @property
    def tokens(self) -> int:
        if self.spent is not None:
            return self.spent
        return sample_tokens(self.sample)


@dataclass
class Outcome:
    kept: list[tuple[int, Sample]] = field(default_factory=list)  # (sample index, sample)
    weights: list[float] = field(default_factory=list)  # the kept traces' vote weights
    pruned: list[Pruned] = field(default_factory=list)
    # tokens the engine generated for the problem, set by the strategy: in a tree (CaT) kept
    # traces share prefixes, so it is not the sum of the traces' lengths
    generated: int | None = None

    @property
    def tokens_kept(self) -> int:
        return sum(sample_tokens(s) for _, s in self.kept)

    @property
    def tokens_pruned(self) -> int:
        return sum(p.tokens for p in self.pruned)

    @property
    def tokens_generated(self) -> int:
        return self.generated if self.generated is not None else self.tokens_kept + self.tokens_pruned


def final_answer(prompt: str, sample: Sample) -> str | None:
    """The answer a trace states, as `build_trace` extracts it (None while the thinking is open)."""
    parts = split_thinking(sample.text, sample.reasoning, prompt_opened=bool(prompt_opening(prompt)))
    return extract_answer(parts.answer) if parts.closed else None
