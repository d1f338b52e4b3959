"""Confidence-pruned generation: strategies that spend fewer tokens (or vote better) than plain
sampling, selected by the generate stage's `strategy` section.

- `sample`: plain sampling, `n` per problem (the generate stage's own path).
- `deepconf`: DeepConf (arXiv 2508.15260), `mode: offline` (filter and weight the vote) or
  `online` (a warm-up sets a threshold; later traces stop when a window's confidence falls below).
- `cat`: CASPO's confidence-aware tree, our reading of it (`stages/prune/cat.py`).
- `think_at_n`: Think@n (arXiv 2602.13517), the deepest-thinking prefixes continued.

Every strategy returns, per problem, the traces it keeps with their vote weights and the ones it
pruned with a reason (the stage writes them to its rejects folder), and the tokens it generated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stages.engine import SamplingConfig
from stages.prune import cat, deepconf
from stages.prune.chunked import GenerateFn
from stages.prune.confidence import weighted_vote
from stages.prune.outcome import Outcome, Pruned, final_answer

__all__ = ["Outcome", "Pruned", "StrategyConfig", "final_answer", "run_strategy", "vote"]


class StrategyConfig(BaseModel):
    """The generate stage's `strategy` section. The defaults fit the tiny reasoner's short traces
    (~150 tokens); DeepConf's paper uses window 2048 on traces of many thousands."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["sample", "deepconf", "cat", "think_at_n"] = "sample"
    mode: Literal["offline", "online"] = "online"  # deepconf
    window: int = Field(32, ge=1)  # tokens per group-confidence window
    # token confidence: DeepConf's (-mean of the top-k logprobs), or the drawn token's logprob
    confidence: Literal["topk_mean", "chosen"] = "topk_mean"
    # online deepconf: stop threshold at this percentile of the warm-up traces' lowest group
    # confidence (10: DeepConf-high, 90: DeepConf-low); cat: a round's candidates below this
    # percentile of the round are dropped
    percentile: float = Field(10.0, ge=0, le=100)
    warmup: int = Field(2, ge=1)  # online deepconf: traces per problem generated in full first
    # online deepconf: stop a problem's remaining traces once its finished ones agree by this
    # confidence-weighted share (DeepConf's adaptive sampling); None: off
    consensus: float | None = Field(None, gt=0, le=1)
    eta: float = Field(0.5, gt=0, le=1)  # offline deepconf and think_at_n: the share of traces kept
    branch: int = Field(2, ge=1)  # cat: candidate next steps per live trace
    chunk_tokens: int = Field(32, ge=1)  # online deepconf and cat: tokens between checks (cat: a step)
    prefix_tokens: int = Field(50, ge=1)  # think_at_n: the prefix whose deep-thinking ratio ranks
    # think_at_n: `stages.logit_lens.DepthConfig`'s two settings, kept as plain numbers here
    # so that the generate stage does not import torch for the other strategies
    depth_threshold: float = Field(0.5, gt=0)
    depth_fraction: float = Field(0.85, gt=0, le=1)
    device: str = "auto"  # think_at_n: where transformers runs the model for the ratio


def run_strategy(
    cfg: StrategyConfig,
    generate: GenerateFn,
    prompts: Sequence[str],
    seeds: Sequence[int],
    sampling: SamplingConfig,
    model: str | None = None,
) -> list[Outcome]:
    """One `Outcome` per prompt; `model` (the engine's model name) is needed by `think_at_n`."""
    if cfg.kind == "sample":
        outs = []
        for g in generate(prompts, sampling, seeds):
            o = Outcome()
            if g.error or not g.samples:
                o.pruned.append(Pruned(0, None, "generation_error", g.error or "no samples"))
            o.kept = list(enumerate(g.samples))
            o.weights = [1.0] * len(g.samples)
            outs.append(o)
        return outs
    if cfg.kind == "deepconf":
        return (deepconf.offline if cfg.mode == "offline" else deepconf.online)(cfg, generate, prompts, seeds, sampling)
    if cfg.kind == "cat":
        return cat.run(cfg, generate, prompts, seeds, sampling)
    from stages.prune import think  # it loads torch and transformers: only for think@n

    if model is None:
        raise ValueError("think_at_n needs the generating model's name (its weights give the ratio)")
    return think.run(cfg, generate, prompts, seeds, sampling, model)


def vote(prompt: str, outcome: Outcome, weighted: bool = True) -> str | None:
    """The problem's answer from the kept traces: confidence-weighted, or plain majority."""
    answers = [final_answer(prompt, s) for _, s in outcome.kept]
    return weighted_vote(answers, outcome.weights if weighted else [1.0] * len(answers))
