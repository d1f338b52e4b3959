"""The labeler interface: every step labeler answers, per trace, where the first error is.

Labelers work on a batch of traces at once (so model-backed ones make one batched engine call
per round) and return one `TraceLabel` each. A labeler that cannot decide for a trace says so
(`first_error=None` with a `note`) instead of guessing. Each labeler is one file implementing
`StepLabeler` in `labelers/`, found there by `registry.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from stages.engine import Engine


@dataclass
class TraceLabel:
    """One labeler's verdict on one trace. `first_error` is the earliest wrong step (-1: none;
    None: no verdict); `step_labels[i]` is True for a step judged correct; `tokens` counts what
    the labeler generated for this trace."""

    first_error: int | None
    step_labels: list[bool | None] = field(default_factory=list)
    step_values: list[float | None] = field(default_factory=list)
    tokens: int = 0
    note: str | None = None
    # rollout labelers: each rollout's first step and outcome (`schemas/labels.py`, `branches`)
    branches: list[dict] = field(default_factory=list)


class StepLabeler(Protocol):
    name: ClassVar[str]  # its registry name and file name: its columns in `schemas/labels.py`, `first_error_<name>`
    uses: ClassVar[tuple[str, ...]]  # the label stage's model purposes it needs ("completer", "judge")
    section: ClassVar[str | None]  # its section of the label stage's recipe section (None: it has none)
    config: ClassVar[type | None]  # that section's type, a pydantic model whose defaults are the section's

    @classmethod
    def from_config(cls, cfg: Any, engine: Callable[[str], Engine]) -> StepLabeler:
        """The labeler a `LabelConfig` describes; `engine(purpose)` gives the stage's engines."""
        ...

    def label(self, traces: list[dict]) -> list[TraceLabel]: ...

    @staticmethod
    def step_fields(label: TraceLabel | None, i: int) -> dict[str, Any]:
        """Its columns of step `i` from its verdict on the trace (None: it did not run)."""
        ...


def labels_from_first_error(first_error: int | None, n_steps: int) -> list[bool | None]:
    """Process labels: steps before the first error are correct, the rest are not."""
    if first_error is None:
        return [None] * n_steps
    if first_error < 0:
        return [True] * n_steps
    return [i < first_error for i in range(n_steps)]
