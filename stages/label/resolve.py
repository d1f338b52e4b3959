"""Resolving a disagreement by evidence of an error, instead of dropping the trace.

When the labelers disagree on the first error, some of them have evidence and some an opinion.
A false arithmetic claim the symbolic checker found is proof that its step is wrong; an MC value
of 0 (no rollout from the prefix through a step reaches the gold answer) is evidence that the
prefix is broken by then, once a recheck from that prefix (`resolve_k` more rollouts, stopping at
the first that reaches the answer) also misses: k misses in a row happen by chance on a correct
prefix of a weak completer, and a hit withdraws the claim. The judge's verdict is the opinion
being weighed, not evidence. The resolved first error is the earliest evidenced one (each is an
upper bound on the true first error); a trace with no evidence left stays `disagree`.
"""

from __future__ import annotations

from stages.engine import Engine
from stages.label.base import TraceLabel
from stages.prune import StrategyConfig
from stages.rollouts import RolloutConfig, rollout_values
from stages.segment import step_prefix


def evidenced_first_error(verdicts: dict[str, TraceLabel], mc_confirmed: bool) -> int | None:
    """The earliest error with evidence: the symbolic checker's first false claim, the MC first
    error if its recheck confirmed it; None when neither has one."""
    claims = []
    if (sym := verdicts.get("symbolic")) is not None and sym.first_error is not None and sym.first_error >= 0:
        claims.append(sym.first_error)
    if mc_confirmed:
        claims.append(verdicts["mc"].first_error)
    return min(claims) if claims else None


def resolve_disputes(
    engine: Engine | None, rollouts: RolloutConfig, k: int, traces: list[dict], verdicts: list[dict[str, TraceLabel]]
) -> list[tuple[int | None, int]]:
    """Per disputed trace: its resolved first error (None: no evidence) and the recheck's tokens.
    One engine call per recheck round, for every trace whose MC labeler claims an error."""
    recheck = rollouts.model_copy(
        update={"k": k, "adaptive_k": True, "pruning": StrategyConfig(), "seed": rollouts.seed + rollouts.k}
    )
    claims = [
        (j, v["mc"].first_error)
        for j, v in enumerate(verdicts)
        if "mc" in v and v["mc"].first_error is not None and v["mc"].first_error >= 0
    ]
    rolled = (
        rollout_values(engine, recheck, [(traces[j], step_prefix(traces[j], m)) for j, m in claims]) if claims else []
    )
    confirmed = {j: (r.value == 0, r.tokens) for (j, _), r in zip(claims, rolled)}
    out = []
    for j, v in enumerate(verdicts):
        ok, tokens = confirmed.get(j, (False, 0))
        out.append((evidenced_first_error(v, ok), tokens))
    return out
