"""Sampling Monte-Carlo rollouts from step prefixes: how many reach the gold answer, at what cost.

From each prefix k completions are drawn; the MC value is the share whose answer verifies. Each
completion's first step is also kept (`Rolled.branches`): a rollout from a prefix is a sampled
next step with a known outcome, so the label stage's rollouts can feed the step pairs
(`pairs.next_step.source: rollouts`) instead of a second sampling pass.

Two settings spend fewer tokens for the same decision (off by default; `thoughtmill bench cost`
reports each one's saving and its effect on label quality):

- `adaptive_k`: binary search only needs to know whether a prefix's MC value is above 0, and one
  rollout that reaches the answer decides it. The k rollouts are drawn one round at a time and a
  prefix stops at its first hit; only a prefix that keeps missing costs all k. Its MC value is
  then hits over rollouts drawn (1.0 for a first-draw hit), not the unbiased k-sample share.
- `answer_from: thinking`: a rollout stops where its thinking ends (vLLM's stop string
  `</think>`, which vLLM drops from the text) and is scored by the answer the thinking
  concluded. The answer section after it (an R1 model's summary: hundreds of tokens; a third of
  a tiny-reasoner rollout) decides nothing the thinking has not. A model that misstates its
  answer (`fidelity`) is then scored by what it reasoned to, which is what a step label asks.

The k completions can also be spent by a pruning strategy (`stages.prune`, `pruning`): the MC
value is then the share of the completions it kept that reach the answer (0 when it kept none),
and the tokens are all it generated, pruned ones included.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stages.answers import extract_answer, prompt_opening, split_thinking
from stages.engine import Engine, Sample, SamplingConfig
from stages.prune import StrategyConfig, run_strategy
from stages.prune.chunked import sub_seed
from stages.verification.verify import verify_answer

THINK_END = "</think>"
STEP_SEP = "\n\n"  # the default (paragraph) segmentation's step delimiter: where a first step ends


class RolloutConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: Literal["per_step", "binary_search"] = "binary_search"
    k: int = 4
    max_tokens: int = 300
    temperature: float = 1.0
    seed: int = 0
    verifier: str = "math"
    trust_correct_traces: bool = True  # binary search: a correct trace needs no rollouts...
    # ...except before its last reflection step ("Wait, ..."), where a slip may have been fixed
    reflection_pattern: str = r"^\W*(wait|hmm|hold on|actually|but wait)\b"
    # how the k completions are spent: plain sampling, or a confidence-pruned strategy
    pruning: StrategyConfig = Field(default_factory=StrategyConfig)
    adaptive_k: bool = False  # draw one rollout per round; a prefix stops at its first hit
    answer_from: Literal["final", "thinking"] = "final"  # thinking: stop at `</think>`, score its conclusion

    @model_validator(mode="after")
    def _one_sampler(self) -> RolloutConfig:
        if self.adaptive_k and self.pruning.kind != "sample":
            raise ValueError("rollouts: adaptive_k draws plain samples one at a time; it excludes pruning")
        return self


class Rolled(NamedTuple):
    """A prefix's rollouts: MC value (None: the engine could not complete the prefix), tokens
    generated, and per completion its first step, whether it reached the answer, and that first
    step's mean token logprob (None without logprobs)."""

    value: float | None
    tokens: int
    branches: list[tuple[str, bool, float | None]]


def rollout_correct(trace: dict, prefix: str, rollout: str, verifier: str, answer_from: str = "final") -> bool:
    """Does the trace's completion up to `prefix`, continued by `rollout`, end with the gold answer
    (`final`: the answer after the thinking; `thinking`: the answer the thinking concluded, the
    rollout having stopped at the thinking's end)?"""
    completion = prefix[len(trace["prompt"]) :] + rollout
    parts = split_thinking(completion, prompt_opened=bool(prompt_opening(trace["prompt"])))
    if answer_from == "thinking":
        answer = extract_answer(parts.thinking)
    else:
        answer = extract_answer(parts.answer) if parts.closed else None
    return bool(verify_answer(trace["gold_answer"], answer, verifier))


def first_step(sample: Sample) -> tuple[str, float | None]:
    """A completion's first step (up to the step delimiter or the thinking's end, as a trace's own
    last step ends) and its tokens' mean logprob."""
    text = sample.text.split(STEP_SEP, 1)[0].split(THINK_END, 1)[0]
    lps = [lp for lp, off in zip(sample.logprobs, sample.offsets) if off < len(text)]
    return text, float(np.mean(lps)) if lps else None


def _score(cfg: RolloutConfig, trace: dict, prefix: str, samples: list[Sample]) -> list[tuple[str, bool, float | None]]:
    out = []
    for s in samples:
        # stopped at the thinking's end: a rollout cut by max_tokens concluded nothing, whatever
        # its thinking said so far
        cut = cfg.answer_from == "thinking" and s.finish_reason == "length"
        hit = not cut and rollout_correct(trace, prefix, s.text, cfg.verifier, cfg.answer_from)
        text, conf = first_step(s)
        out.append((text, hit, conf))
    return out


def rollout_values(engine: Engine, cfg: RolloutConfig, items: list[tuple[dict, str]]) -> list[Rolled]:
    """The rollouts of each (trace, prefix text): one engine call (k rounds with `adaptive_k`,
    one strategy run when the completions are pruned)."""
    if not items:
        return []
    pruned = cfg.pruning.kind != "sample"
    sampling = SamplingConfig(
        n=cfg.k,
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        seed=cfg.seed,
        logprobs=5 if pruned else 0,
        stop=[THINK_END] if cfg.answer_from == "thinking" else [],
    )
    if pruned:
        return _pruned_values(engine, cfg, items, sampling)
    prompts = [p for _, p in items]
    if not cfg.adaptive_k:
        return [_rolled(cfg, t, p, g) for (t, p), g in zip(items, engine.generate(prompts, sampling))]
    drawn: list[list[Sample]] = [[] for _ in items]
    failed: set[int] = set()  # the engine could not complete the prefix: no value
    todo = list(range(len(items)))
    for r in range(cfg.k):
        if not todo:
            break
        one = sampling.model_copy(update={"n": 1, "seed": cfg.seed + r})  # a new draw each round
        decided = set()
        for i, g in zip(todo, engine.generate([prompts[i] for i in todo], one)):
            if g.error or not g.samples:
                failed.add(i)
                decided.add(i)
                continue
            drawn[i] += g.samples
            if any(hit for _, hit, _ in _score(cfg, *items[i], g.samples)):  # MC > 0: decided
                decided.add(i)
        todo = [i for i in todo if i not in decided]
    return [_from_samples(cfg, t, p, None if i in failed else drawn[i]) for i, (t, p) in enumerate(items)]


def _rolled(cfg: RolloutConfig, trace: dict, prefix: str, gen) -> Rolled:
    return _from_samples(cfg, trace, prefix, None if gen.error or not gen.samples else gen.samples)


def _from_samples(cfg: RolloutConfig, trace: dict, prefix: str, samples: list[Sample] | None) -> Rolled:
    if not samples:
        return Rolled(None, 0, [])
    branches = _score(cfg, trace, prefix, samples)
    hits = sum(hit for _, hit, _ in branches)
    return Rolled(hits / len(samples), sum(len(s.offsets) for s in samples), branches)


def _pruned_values(engine: Engine, cfg: RolloutConfig, items: list[tuple[dict, str]], sampling: SamplingConfig):
    # a strategy seeds each completion itself: from the prefix, so a re-run rolls out the same
    seeds = [sub_seed(cfg.seed, p) for _, p in items]
    outcomes = run_strategy(cfg.pruning, engine.generate, [p for _, p in items], seeds, sampling, engine.name)
    out = []
    for (trace, prefix), o in zip(items, outcomes):
        if not o.kept and all(p.reason == "generation_error" for p in o.pruned):
            out.append(Rolled(None, o.tokens_generated, []))
            continue
        branches = _score(cfg, trace, prefix, [s for _, s in o.kept])
        hits = sum(hit for _, hit, _ in branches)
        out.append(Rolled(hits / len(o.kept) if o.kept else 0.0, o.tokens_generated, branches))
    return out
