"""The discriminative PRM labeler: a process reward model scores every step in one forward pass.

Prefill only, nothing sampled: its cost is the trace's own tokens read once, against the
rollouts' and the judge's generated ones. The first error is the first step whose reward falls
below `threshold`. The model is the recipe's `prm` role through the engine layer (`runner:
pooling`): the tiny PRM shipped beside the tiny reasoner (trained with TRL's PRMTrainer on the
pipeline's own published `prm` config) on CPU, a served PRM such as Qwen2.5-Math-PRM on GPUs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from stages.engine import StepRewardEngine
from stages.label.base import TraceLabel


class PRMLabelerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = 0.5  # a step whose P(correct) is below this is the trace's first error
    step_separator: str = "\n\n"  # what the PRM was trained with after each step (`thoughtmill train prm`)


class PRMLabeler:
    name = "prm"
    uses = ("prm",)
    section, config = "prm", PRMLabelerConfig

    def __init__(self, engine: StepRewardEngine, cfg: PRMLabelerConfig) -> None:
        if not hasattr(engine, "step_rewards"):
            raise ValueError(f"labeler prm: model {engine.name!r} is not a step-reward model (set runner: pooling)")
        self.engine, self.cfg = engine, cfg

    @classmethod
    def from_config(cls, cfg, engine) -> PRMLabeler:
        return cls(engine("prm"), cfg.prm)

    @staticmethod
    def step_fields(label: TraceLabel | None, i: int) -> dict:
        return {
            "prm_value": label.step_values[i] if label else None,
            "prm_label": label.step_labels[i] if label else None,
        }

    def label(self, traces: list[dict]) -> list[TraceLabel]:
        if not traces:
            return []
        steps = [[s["text"] for s in t["steps"]] for t in traces]
        rewards = self.engine.step_rewards([t["problem"] for t in traces], steps, self.cfg.step_separator)
        return [self.verdict(r) for r in rewards]

    def verdict(self, rewards: list[float | None]) -> TraceLabel:
        """The first step below the threshold is the first error; an unscored step (past the
        model's context) before any such step leaves the trace undecided."""
        labels: list[bool | None] = [None if r is None else r >= self.cfg.threshold for r in rewards]
        for i, ok in enumerate(labels):
            if ok is None:
                return TraceLabel(None, labels, list(rewards), note="prm_context_exceeded")
            if not ok:
                return TraceLabel(i, labels, list(rewards))
        return TraceLabel(-1, labels, list(rewards))
