"""Frontier: keep what the student can learn from.

Per problem, the student's pass rate from its own samples must fall within a band (open-r1 keeps
[0.1, 0.9]: always-solved problems teach nothing, never-solved ones are beyond reach). Per
sample, the student's likelihood profile: mean per-token NLL of the response given the prompt,
and IFD = PPL(A|Q) / PPL(A) (selective reflection-tuning): above the threshold the question does
not help the student predict the answer, so the sample is beyond its frontier. Every drop is
recorded with its reason.
"""

from __future__ import annotations

import math

from pydantic import Field

from schemas import FRONTIER, LABELED_TRACES
from stages.answers import extract_answer, prompt_opening, split_thinking
from stages.base import ModelStageConfig, ShardStage
from stages.engine import Engine, SamplingConfig
from stages.verification.verify import verify_answer


class FrontierConfig(ModelStageConfig):
    PURPOSES = ("student",)
    samples: int = 8  # student samples per problem for its pass rate
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(max_tokens=400, logprobs=0))
    prompt_template: str = "{problem}"
    pass_rate_band: tuple[float, float] = (0.1, 0.9)
    max_ifd: float = 1.0
    verifier: str = "math"
    chunk_size: int = 4096


def pass_rates(engine: Engine, problems: dict[str, dict], cfg: FrontierConfig) -> tuple[dict[str, float], int]:
    """Per problem, the fraction of the student's samples that verify; and the tokens it sampled."""
    ids = sorted(problems)
    prompts = [engine.chat_prompt(cfg.prompt_template.format(problem=problems[i]["problem"])) for i in ids]
    sampling = cfg.sampling.model_copy(update={"n": cfg.samples})
    rates, tokens = {}, 0
    for pid, prompt, gen in zip(ids, prompts, engine.generate(prompts, sampling) if ids else []):
        tokens += sum(len(s.token_ids) for s in gen.samples)
        opened = bool(prompt_opening(prompt))  # an R1-style template: a truncated sample is all thinking
        answers = [extract_answer(split_thinking(s.text, prompt_opened=opened).answer) for s in gen.samples]
        ok = [verify_answer(problems[pid]["gold_answer"], a, cfg.verifier) for a in answers]
        rates[pid] = sum(bool(x) for x in ok) / max(len(ok), 1)
    return rates, tokens


def likelihoods(engine: Engine, traces: list[dict], cfg: FrontierConfig) -> tuple[list[tuple[float, float]], int]:
    """(NLL given the question, NLL without it), mean per token, under the student; and the
    continuation tokens it scored."""
    empty = engine.chat_prompt("")
    prompts, conts = [], []
    for t in traces:
        prompts += [engine.chat_prompt(cfg.prompt_template.format(problem=t["problem"])), empty]
        conts += [t["completion"], t["completion"]]
    scores = engine.score(prompts, conts) if prompts else []
    nll = [math.nan if s is None else -sum(s) / max(len(s), 1) for s in scores]  # nan: over the context
    return list(zip(nll[0::2], nll[1::2])), sum(len(s) for s in scores if s is not None)


def decide(pass_rate: float, ifd: float, cfg: FrontierConfig) -> str:
    lo, hi = cfg.pass_rate_band
    if pass_rate < lo:
        return "pass_rate_too_low"
    if pass_rate > hi:
        return "pass_rate_too_high"
    if not math.isfinite(ifd) or ifd > cfg.max_ifd:
        return "ifd_too_high"
    return ""


class Frontier(ShardStage):
    name = "frontier"
    in_features = LABELED_TRACES
    out_features = FRONTIER

    def process_chunk(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        problems = {t["problem_id"]: t for t in rows}
        student = self.engine("student")
        rates, sampled = pass_rates(student, problems, self.cfg)
        scores, scored = likelihoods(student, rows, self.cfg)
        self.stat_update("tokens_generated", value=sampled)
        self.stat_update("tokens_scored", value=scored)
        out = []
        for t, (nll, nll_q0) in zip(rows, scores):
            ifd = math.exp(nll - nll_q0)
            unscored = math.isnan(nll) or math.isnan(nll_q0)
            reason = "too_long_for_student" if unscored else decide(rates[t["problem_id"]], ifd, self.cfg)
            self.stat_update(f"dropped_{reason}" if reason else "kept")
            out.append(
                {
                    "trace_id": t["trace_id"],
                    "problem_id": t["problem_id"],
                    "pass_rate": rates[t["problem_id"]],
                    "nll": nll,
                    "nll_unconditioned": nll_q0,
                    "ifd": ifd,
                    "keep": not reason,
                    "drop_reason": reason,
                }
            )
        return out, []
