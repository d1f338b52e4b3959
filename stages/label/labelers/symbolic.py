"""The symbolic step checker as a labeler: free, trusted step labels from exact arithmetic.

Each step's arithmetic claims are found and checked exactly (`stages.arithmetic.claims`); a step
with a false claim is wrong, one whose claims all hold is correct, one without any stays unknown.
"""

from __future__ import annotations

from stages.arithmetic.claims import check_steps, first_error
from stages.label.base import TraceLabel


class SymbolicLabeler:
    """The step checker as a `StepLabeler`: `first_error` is the first wrong step, -1 when no step is
    wrong and at least one was checked (steps without claims stay unlabeled), None with the note
    "not_applicable" when the trace makes no checkable claim at all."""

    name = "symbolic"
    uses = ()
    section, config = None, None  # nothing to configure

    @classmethod
    def from_config(cls, cfg, engine) -> SymbolicLabeler:
        return cls()

    def label(self, traces: list[dict]) -> list[TraceLabel]:
        return [self.label_steps([s["text"] for s in t["steps"]]) for t in traces]

    @staticmethod
    def step_fields(label: TraceLabel | None, i: int) -> dict:
        verdict = {True: "correct", False: "wrong", None: "unknown"}
        return {"symbolic": verdict[label.step_labels[i]] if label else None}

    @staticmethod
    def label_steps(steps: list[str]) -> TraceLabel:
        checks = check_steps(steps)
        labels = [{"correct": True, "wrong": False}.get(c.verdict) for c in checks]
        if all(c.verdict == "unknown" for c in checks):
            return TraceLabel(None, labels, note="not_applicable")
        return TraceLabel(first_error(checks), labels)
