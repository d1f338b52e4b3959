"""Pairs: labeled traces in, preference pairs out (step, trace and fidelity kinds)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Literal

from pydantic import Field

from schemas import LABELED_TRACES, PAIRS
from stages.base import ModelStageConfig, ShardStage
from stages.pairs.common import dedupe_and_cap
from stages.pairs.fidelity_pairs import fidelity_pairs
from stages.pairs.step_pairs import NextStepConfig, next_step_pairs, sibling_pairs
from stages.pairs.trace_pairs import trace_pairs
from stages.rollouts import RolloutConfig

Kind = Literal["step", "trace", "fidelity"]


class PairsConfig(ModelStageConfig):
    PURPOSES = ("generator",)  # samples candidate next steps and rolls them out (step pairs)
    kinds: list[Kind] = ["step", "trace", "fidelity"]
    next_step: NextStepConfig = Field(default_factory=NextStepConfig)
    rollouts: RolloutConfig = Field(default_factory=lambda: RolloutConfig(strategy="per_step"))
    min_chosen_confidence: float = math.log(0.5)  # trace pairs: answer-span mean logprob of the chosen side
    min_confidence_margin: float = 0.1  # trace pairs between two correct traces
    max_pairs_per_problem: int = 8  # per kind
    chunk_size: int = 4096

    def purposes_used(self) -> tuple[str, ...]:
        sampling = "step" in self.kinds and self.next_step.source == "sample"  # rollouts: the label stage's
        return self.PURPOSES if sampling else ()


class Pairs(ShardStage):
    name = "pairs"
    in_features = LABELED_TRACES
    out_features = PAIRS

    def process_chunk(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        cfg, candidates = self.cfg, []
        if "step" in cfg.kinds:
            engine = self.engine("generator") if "generator" in cfg.purposes_used() else None
            sampled, tokens, rollout_tokens = next_step_pairs(engine, rows, cfg.next_step, cfg.rollouts)
            self.stat_update("next_step_tokens", value=tokens)  # the candidates sampled
            self.stat_update("next_step_rollout_tokens", value=rollout_tokens)  # their rollouts
            candidates += sampled + sibling_pairs(rows)
        if "trace" in cfg.kinds:
            candidates += trace_pairs(rows, cfg.min_chosen_confidence, cfg.min_confidence_margin)
            # ranked by answer confidence: traces without one (imported, no logprobs) take no part
            self.stat_update(
                "trace_pairs_skipped_no_confidence", value=sum(t["answer_confidence"] is None for t in rows)
            )
        if "fidelity" in cfg.kinds:
            candidates += fidelity_pairs(rows)
        dropped: Counter[str] = Counter()
        pairs = dedupe_and_cap(candidates, cfg.max_pairs_per_problem, dropped)
        # the pair funnel: candidates, then each drop once by reason (`stages.funnel`)
        self.stat_update("pairs_candidates", value=sum(p is not None for p in candidates))
        for reason in ("duplicate", "per_problem_cap"):
            self.stat_update(f"dropped_{reason}", value=dropped[reason])
        for p in pairs:
            self.stat_update(f"pairs_{p['kind']}")
        return pairs, []
