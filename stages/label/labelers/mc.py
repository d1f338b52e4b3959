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

How the k completions of a prefix are drawn and scored (and the settings that spend fewer tokens
for the same decision) is `stages/rollouts.py`. Every completion's first step is kept with its
outcome (`TraceLabel.branches`, the `branches` column): the step pairs can be drawn from them.
"""

from __future__ import annotations

import re

from stages.engine import Engine
from stages.label.base import TraceLabel, labels_from_first_error
from stages.rollouts import Rolled, RolloutConfig, rollout_values
from stages.segment import step_prefix
from stages.verification.verify import verify_answer


class MonteCarloLabeler:
    name = "mc"
    uses = ("completer",)
    section, config = "rollouts", RolloutConfig  # the label stage's dispute recheck reads it too

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

    def _values(self, requests: list[tuple[dict, int]]) -> list[Rolled]:
        """The rollouts from each (trace, step) request's prefix, in one engine call."""
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
            mc = [r.value for r in got]
            tokens, branches = sum(r.tokens for r in got), _branches(enumerate(got))
            first = next((i for i, v in enumerate(mc) if v == 0), -1)
            if None in mc[: first if first >= 0 else len(mc)]:  # a step before the first error was not rolled out
                labels.append(TraceLabel(None, [None] * len(mc), mc, tokens, note="rollout_error", branches=branches))
                continue
            labels.append(TraceLabel(first, labels_from_first_error(first, len(mc)), mc, tokens, branches=branches))
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
            for (j, mid), rolled in zip(active, self._values([(traces[j], mid) for j, mid in active])):
                searches[j].record(mid, rolled)
        labels = []
        for s in searches:
            branches = _branches(s.rolled.items())
            if s.first is None:
                labels.append(
                    TraceLabel(
                        None, [None] * len(s.values), s.values, s.tokens, note="rollout_error", branches=branches
                    )
                )
                continue
            first = s.first
            labels.append(
                TraceLabel(first, labels_from_first_error(first, len(s.values)), s.values, s.tokens, branches=branches)
            )
        return labels


def _branches(rolled) -> list[dict]:
    """The `branches` rows of a trace: per (step, its rollouts), each rollout's first step (a next
    step sampled after that step) and whether the rollout reached the answer."""
    return [
        {"after": i, "text": text, "reached": hit, "confidence": conf}
        for i, r in rolled
        for text, hit, conf in r.branches
    ]


class _Search:
    """One trace's binary search: the first error is looked for in [lo, hi) of the segment that
    ends at `end`, then in the later segments in order, until one holds a step with MC value 0."""

    def __init__(self, segments: list[tuple[int, int]], n_steps: int) -> None:
        self.later = list(segments)
        self.lo = self.hi = self.end = 0
        self._next_segment()
        self.values: list[float | None] = [None] * n_steps
        self.tokens = 0
        self.rolled: dict[int, Rolled] = {}
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

    def record(self, mid: int, rolled: Rolled) -> None:
        value = rolled.value
        self.values[mid], self.tokens, self.rolled[mid] = value, self.tokens + rolled.tokens, rolled
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
