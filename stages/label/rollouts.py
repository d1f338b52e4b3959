"""Monte-Carlo step labels from rollouts: Math-Shepherd per-step, or OmegaPRM binary search.

From the prefix ending at step i, k completions are sampled with a completer model through the
engine layer (vLLM's prefix caching makes the shared prefixes cheap); the MC value of step i is
the fraction that reach the gold answer. `per_step` estimates every step (k·S rollouts);
`binary_search` finds the first step whose MC value is 0, assuming a prefix with MC > 0 is
correct so far (k·log S rollouts), and spends nothing on a trace whose own final answer is
right and that never reflects: the trace itself is a successful rollout from each of its
prefixes. A right trace that reflects ("Wait, ...") is searched before its last reflection,
where a self-corrected slip hides behind the right answer; and since a reflection can repair
what came before it, the search runs segment by segment between reflections.

The k completions can be spent by a pruning strategy (`stages.prune`, the `pruning` section): the
MC value is then the share of the completions it kept that reach the answer (0 when it kept none:
no confident completion reached it), and the tokens are all it generated, pruned ones included.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stages.answers import extract_answer, prompt_opening, split_thinking
from stages.engine import Engine, SamplingConfig
from stages.label.base import TraceLabel, labels_from_first_error, step_prefix
from stages.label.verify import verify_answer
from stages.prune import StrategyConfig, run_strategy


class RolloutConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: Literal["per_step", "binary_search"] = "binary_search"
    k: int = 4
    max_tokens: int = 300
    temperature: float = 1.0
    seed: int = 0
    verifier: str = "math"
    trust_correct_traces: bool = True  # binary search: a correct trace needs no rollouts...
    # ...except before its last reflection step ("Wait, ..."), where a slip may have been fixed
    reflection_pattern: str = r"^\W*(wait|hmm|hold on|actually|but wait)\b"
    # how the k completions are spent: plain sampling, or a confidence-pruned strategy
    pruning: StrategyConfig = Field(default_factory=StrategyConfig)


def rollout_correct(trace: dict, prefix: str, rollout: str, verifier: str) -> bool:
    """Does the trace's completion up to `prefix`, continued by `rollout`, end with the gold answer?"""
    completion = prefix[len(trace["prompt"]) :] + rollout
    parts = split_thinking(completion, prompt_opened=bool(prompt_opening(trace["prompt"])))
    return bool(verify_answer(trace["gold_answer"], extract_answer(parts.answer) if parts.closed else None, verifier))


def rollout_values(engine: Engine, cfg: RolloutConfig, items: list[tuple[dict, str]]) -> list[tuple[float | None, int]]:
    """(MC value, tokens generated) of each (trace, prefix text): k completions of the prefix,
    the fraction whose answer verifies against the trace's gold answer; None when the engine
    could not complete it (e.g. a prefix longer than the context). One engine call, or one
    strategy run when the completions are pruned."""
    if not items:
        return []
    pruned = cfg.pruning.kind != "sample"
    sampling = SamplingConfig(
        n=cfg.k, temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=cfg.seed, logprobs=5 if pruned else 0
    )
    if pruned:
        return _pruned_values(engine, cfg, items, sampling)
    out = []
    for (trace, prefix), gen in zip(items, engine.generate([p for _, p in items], sampling)):
        if gen.error or not gen.samples:
            out.append((None, 0))
            continue
        hits = sum(rollout_correct(trace, prefix, s.text, cfg.verifier) for s in gen.samples)
        out.append((hits / len(gen.samples), sum(len(s.offsets) for s in gen.samples)))
    return out


def _pruned_values(engine: Engine, cfg: RolloutConfig, items: list[tuple[dict, str]], sampling: SamplingConfig):
    # a strategy seeds each completion itself: from the prefix, so a re-run rolls out the same
    seeds = [int(hashlib.sha256(f"{cfg.seed}\x00{p}".encode()).hexdigest()[:8], 16) for _, p in items]
    outcomes = run_strategy(cfg.pruning, engine.generate, [p for _, p in items], seeds, sampling, engine.name)
    out = []
    for (trace, prefix), o in zip(items, outcomes):
        if not o.kept and all(p.reason == "generation_error" for p in o.pruned):
            out.append((None, o.tokens_generated))
            continue
        hits = sum(rollout_correct(trace, prefix, s.text, cfg.verifier) for _, s in o.kept)
        out.append((hits / len(o.kept) if o.kept else 0.0, o.tokens_generated))
    return out


class MonteCarloLabeler:
    name = "mc"
    uses = ("completer",)

    def __init__(self, engine: Engine, cfg: RolloutConfig) -> None:
        self.engine, self.cfg = engine, cfg

    @classmethod
    def from_config(cls, cfg, engine) -> MonteCarloLabeler:
        return cls(engine("completer"), cfg.rollouts)

    @staticmethod
    def step_fields(label: TraceLabel | None, i: int) -> dict:
        return {
            "mc_value": label.step_values[i] if label and label.step_values else None,
            "mc_label": label.step_labels[i] if label else None,
        }

    def _values(self, requests: list[tuple[dict, int]]) -> list[tuple[float, int]]:
        """(MC value, tokens generated) for each (trace, step) request, in one engine call."""
        return rollout_values(self.engine, self.cfg, [(t, step_prefix(t, i)) for t, i in requests])

    def label(self, traces: list[dict]) -> list[TraceLabel]:
        if self.cfg.strategy == "per_step":
            return self._per_step(traces)
        return self._binary_search(traces)

    def _per_step(self, traces: list[dict]) -> list[TraceLabel]:
        requests = [(t, i) for t in traces for i in range(len(t["steps"]))]
        values = iter(self._values(requests))
        labels = []
        for t in traces:
            got = [next(values) for _ in t["steps"]]
            mc = [v for v, _ in got]
            first = next((i for i, v in enumerate(mc) if v == 0), -1)
            if None in mc[: first if first >= 0 else len(mc)]:  # a step before the first error was not rolled out
                labels.append(TraceLabel(None, [None] * len(mc), mc, sum(n for _, n in got), note="rollout_error"))
                continue
            labels.append(TraceLabel(first, labels_from_first_error(first, len(mc)), mc, sum(n for _, n in got)))
        return labels

    def _search_segments(self, trace: dict) -> list[tuple[int, int]]:
        """The step ranges binary search covers, in order. All of a trace with a wrong final
        answer; of a trace whose final answer verifies, only the steps before its last reflection
        step (a self-corrected slip is a wrong step that a right answer hides); none when it never
        reflects. The range is cut at each reflection: rollouts after `Wait, ...` may repair an
        earlier slip, so MC > 0 there vouches only for the steps since the reflection."""
        steps = trace["steps"]
        pattern = re.compile(self.cfg.reflection_pattern, re.IGNORECASE)
        reflections = [i for i, s in enumerate(steps) if pattern.search(s["text"])]
        limit = len(steps)
        right = verify_answer(trace["gold_answer"], trace["final_answer"], self.cfg.verifier)
        if self.cfg.trust_correct_traces and right:
            limit = max(reflections, default=0)
        bounds = [0, *(i for i in reflections if 0 < i < limit), limit]
        return [(a, b) for a, b in zip(bounds, bounds[1:]) if a < b]

    def _binary_search(self, traces: list[dict]) -> list[TraceLabel]:
        searches = [_Search(self._search_segments(t), len(t["steps"])) for t in traces]
        while active := [(j, s.mid) for j, s in enumerate(searches) if s.open]:
            for (j, mid), (value, tokens) in zip(active, self._values([(traces[j], mid) for j, mid in active])):
                searches[j].record(mid, value, tokens)
        labels = []
        for s in searches:
            if s.first is None:
                labels.append(TraceLabel(None, [None] * len(s.values), s.values, s.tokens, note="rollout_error"))
                continue
            labels.append(TraceLabel(s.first, labels_from_first_error(s.first, len(s.values)), s.values, s.tokens))
        return labels


class _Search:
    """One trace's binary search: the first error is looked for in [lo, hi) of the segment that
    ends at `end`, then in the later segments in order, until one holds a step with MC value 0."""

    def __init__(self, segments: list[tuple[int, int]], n_steps: int) -> None:
        self.later = list(segments)
        self.lo = self.hi = self.end = 0
        self._next_segment()
        self.values: list[float | None] = [None] * n_steps
        self.tokens = 0
        self.first: int | None = -1  # -1: no error found; None: no verdict (a rollout failed)

    @property
    def open(self) -> bool:
        return self.lo < self.hi

    @property
    def mid(self) -> int:
        return (self.lo + self.hi) // 2

    def _next_segment(self) -> None:
        if self.later:
            self.lo, self.end = self.later.pop(0)
            self.hi = self.end

    def record(self, mid: int, value: float | None, tokens: int) -> None:
        self.values[mid], self.tokens = value, self.tokens + tokens
        if value is None:  # cannot roll out from here: no verdict for this trace
            self.lo = self.hi = 0
            self.first = None
            return
        if value > 0:
            self.lo = mid + 1
        else:
            self.hi = mid
        if self.open:
            return
        if self.hi < self.end:  # an MC-0 step closed the search: the first error
            self.first = self.lo
        else:  # this segment is clean: search the next one, if any
            self._next_segment()
