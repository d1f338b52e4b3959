"""Consensus: one label per step, with provenance, from the labelers a recipe trusts.

Default as in Qwen's PRM lessons: keep a trace's step labels only when its labelers agree on the
first error (Monte-Carlo and judge, plus the symbolic checker on traces it applies to).
Disagreement is kept and flagged, never silently resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from stages.label.base import TraceLabel
from stages.label.repair import AfterRepair


class ConsensusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[str] = ["mc", "judge", "symbolic"]
    min_sources: int = 2  # fewer answering labelers than this: "insufficient"
    after_error: Literal["wrong", "drop"] = "wrong"  # steps after the first error: labeled wrong, or null
    # Self-corrected traces: steps from a slip's repair on are correct again, or keep `after_error`
    # (`carry`); both readings are defensible, see `stages/label/repair.py`.
    after_repair: AfterRepair = "correct"


@dataclass(frozen=True)
class Consensus:
    status: Literal["agree", "disagree", "insufficient"]
    first_error: int | None
    step_labels: list[bool | None]


def consensus(verdicts: dict[str, TraceLabel | None], n_steps: int, cfg: ConsensusConfig) -> Consensus:
    """`verdicts` maps a source name to its label (None: the source does not apply here)."""
    answered = {
        k: v.first_error
        for k, v in verdicts.items()
        if k in cfg.sources and v is not None and v.first_error is not None
    }
    if len(answered) < cfg.min_sources:
        return Consensus("insufficient", None, [None] * n_steps)
    if len(set(answered.values())) > 1:
        return Consensus("disagree", None, [None] * n_steps)
    first = next(iter(answered.values()))
    if first < 0:
        return Consensus("agree", -1, [True] * n_steps)
    tail = False if cfg.after_error == "wrong" else None
    return Consensus("agree", first, [True if i < first else False if i == first else tail for i in range(n_steps)])
