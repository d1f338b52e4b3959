"""Self-correction: does a later step explicitly repair a flawed step's false claim?

A trace that writes `16 - 7 = 8` and then `Wait, 16 - 7 = 9, not 8.` caught its own slip. With a
right final answer that is self-correction, the productive use of thinking, and not post-hoc
rationalization (a flaw that is never repaired, yet the answer comes out right). The label stage
sets `self_corrected` for the first and `rationalized` only for the second.

A repair is explicit: the same left-hand side (whitespace aside, LaTeX normalised as the symbolic
checker does) is restated with a true value, later in the same step or in a later step. Only false
arithmetic claims (the symbolic checker's) can be seen repaired: a flaw located by the Monte-Carlo
or judge labelers alone, with no false claim in its step, is never taken as repaired, so such a
trace stays `rationalized` when its answer is right (a rejected fidelity pair, as before).

Step labels after a repaired error (`label.consensus.after_repair`, the `prm` config's labels):
- `correct` (default): the step holding the false claim stays wrong, and so do the steps between
  it and its repair (they build on the slip); the repairing step and those after it are correct
  again. This is the exact per-step truth of arithmetic traces (`truth.step_truth`) and
  what Monte-Carlo values measure (a prefix that repaired its slip reaches the answer), so a PRM
  trained on it does not penalise catching one's own slip.
- `carry`: every step from the first error on keeps the `after_error` label (ProcessBench's
  "the trace went wrong here" reading, and today's labels for every other flawed trace).
Both are defensible; `after_error: drop` truncates the `prm` rows at the first error either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stages.arithmetic.claims import find_claims
from stages.arithmetic.exact import check_claim

AfterRepair = Literal["correct", "carry"]


def _key(lhs: str) -> str:
    return "".join(lhs.split())


def repairs(steps: list[str]) -> dict[int, int | None]:
    """Per step with a false claim: the step by which every one of its false claims has been
    restated with a true value (the same step when it repairs itself), None when one never is."""
    true_at: dict[str, list[tuple[int, int]]] = {}  # lhs -> (step, position) of its true restatements
    false_at: list[tuple[int, int, str]] = []
    for i, s in enumerate(steps):
        for k, c in enumerate(find_claims(s)):
            ok = check_claim(c)
            if ok:
                true_at.setdefault(_key(c.lhs), []).append((i, k))
            elif ok is False:  # None: uncheckable, neither a flaw nor a repair
                false_at.append((i, k, _key(c.lhs)))
    out: dict[int, int | None] = {}
    for i, k, key in false_at:
        fix = next((j for j, q in true_at.get(key, []) if (j, q) > (i, k)), None)
        prev = out.get(i, i)
        out[i] = None if fix is None or prev is None else max(prev, fix)  # repaired when its last claim is
    return out


def self_correction(steps: list[str], first_error: int | None) -> dict[int, int] | None:
    """{flawed step: repairing step} for a trace whose flaw at `first_error` and every other false
    claim are repaired; None when there is no located flaw, the flawed step has no false claim
    (nothing visible to repair) or some false claim is never repaired."""
    if first_error is None or first_error < 0:
        return None
    fixes = repairs(steps)
    if first_error not in fixes or any(j is None for j in fixes.values()):
        return None
    return {i: j for i, j in fixes.items() if j is not None}


def repaired_labels(labels: list[bool | None], fixes: dict[int, int], first_error: int) -> list[bool | None]:
    """Consensus step labels with the steps after a repair correct again (`after_repair: correct`):
    a flawed step and the steps before its repair keep their labels, every other step from
    `first_error` on becomes correct."""
    spans = [range(i, max(j, i + 1)) for i, j in fixes.items()]
    return [label if i < first_error or any(i in span for span in spans) else True for i, label in enumerate(labels)]


@dataclass(frozen=True)
class Correction:
    step_labels: list[bool | None]
    self_corrected: bool  # a flaw, every false claim repaired, a right final answer
    rationalized: bool  # a flaw never repaired (or not visibly), a right final answer
    repairs: dict[int, int]  # flawed step -> the step that repaired it (self-corrected traces only)


def correction(
    steps: list[str], first_error: int | None, labels: list[bool | None], final_correct: bool, after_repair: AfterRepair
) -> Correction:
    """A trace's self-correction verdict and its step labels under `after_repair`. Repairs count
    only when the final answer is right: a wrong answer after repaired slips means a flaw that no
    labeler located, so its steps keep the consensus labels."""
    flawed = first_error is not None and first_error >= 0
    fixes = self_correction(steps, first_error) if flawed and final_correct else None
    if fixes is not None and after_repair == "correct":
        labels = repaired_labels(labels, fixes, first_error)  # type: ignore[arg-type]
    return Correction(labels, fixes is not None, bool(flawed and final_correct and fixes is None), fixes or {})
