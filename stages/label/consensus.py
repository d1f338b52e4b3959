"""Consensus: one label per step, with provenance, from the labelers a recipe trusts.

Default as in Qwen's PRM lessons: keep a trace's step labels only when its labelers agree on the
first error (Monte-Carlo and judge, plus the symbolic checker on traces it applies to).
Disagreement is kept and flagged, never silently resolved. But the disagreements are the hard
cases a PRM most needs (on the demo, a third of the truly erroneous traces), so `resolve:
evidence` decides them by evidence instead of opinion (`resolve.py`): status `resolved`, kept
beside `agree` (`schemas.labels.KEPT`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from stages.arithmetic.repair import AfterRepair
from stages.label.base import TraceLabel


class ConsensusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[str] = ["mc", "judge", "symbolic"]
    min_sources: int = 2  # fewer answering labelers than this: "insufficient"
    after_error: Literal["wrong", "drop"] = "wrong"  # steps after the first error: labeled wrong, or null
    # Self-corrected traces: steps from a slip's repair on are correct again, or keep `after_error`
    # (`carry`); both readings are defensible, see `stages/arithmetic/repair.py`.
    after_repair: AfterRepair = "correct"
    # disagreements: dropped (flagged `disagree`), or decided by the earliest evidenced error
    resolve: Literal["drop", "evidence"] = "drop"
    resolve_k: int = 4  # rollouts that recheck a disputed MC-0 step (stopping at the first hit)


@dataclass(frozen=True)
class Consensus:
    status: Literal["agree", "resolved", "disagree", "insufficient"]
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
    return settled("agree", next(iter(answered.values())), n_steps, cfg)


def settled(status: Literal["agree", "resolved"], first: int, n_steps: int, cfg: ConsensusConfig) -> Consensus:
    """The step labels of a first error the labelers agree on, or a dispute resolved to."""
    if first < 0:
        return Consensus(status, -1, [True] * n_steps)
    tail = False if cfg.after_error == "wrong" else None
    return Consensus(status, first, [True if i < first else False if i == first else tail for i in range(n_steps)])
