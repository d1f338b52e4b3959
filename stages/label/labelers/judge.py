"""The teacher judge labeler: a ProcessBench-style verdict on the earliest wrong step.

Goes through the engine layer, so the judge is the tiny teacher in-process for tests and the
demo, or a large model behind an OpenAI-compatible endpoint in a real run. Verdicts that do not
parse, or whose per-step reasoning misreads the steps (`judge_format.reasoning_error`), are
recorded with their reason, never guessed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from stages.engine import Engine, SamplingConfig
from stages.label.base import TraceLabel, labels_from_first_error
from stages.label.judge_format import TEMPLATES, Verdict, judge_prompt, parse_verdict, reasoning_error


class JudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template: str = "processbench"
    temperature: float = 0.0
    max_tokens: int = 1024
    seed: int = 0
    check_reasoning: bool = True  # reject verdicts whose per-step lines misquote or contradict (judge_format)


class JudgeLabeler:
    name = "judge"
    uses = ("judge",)
    section, config = "judge", JudgeConfig

    def __init__(self, engine: Engine, cfg: JudgeConfig) -> None:
        if cfg.template not in TEMPLATES:
            raise ValueError(f"unknown judge template {cfg.template!r}; known: {sorted(TEMPLATES)}")
        self.engine, self.cfg = engine, cfg

    @classmethod
    def from_config(cls, cfg, engine) -> JudgeLabeler:
        return cls(engine("judge"), cfg.judge)

    @staticmethod
    def step_fields(label: TraceLabel | None, i: int) -> dict:
        return {"judge_label": label.step_labels[i] if label else None}

    def label(self, traces: list[dict]) -> list[TraceLabel]:
        if not traces:
            return []
        prompts = [
            self.engine.chat_prompt(judge_prompt(t["problem"], [s["text"] for s in t["steps"]], self.cfg.template))
            for t in traces
        ]
        sampling = SamplingConfig(
            n=1, temperature=self.cfg.temperature, max_tokens=self.cfg.max_tokens, seed=self.cfg.seed, logprobs=0
        )
        out = []
        for t, gen in zip(traces, self.engine.generate(prompts, sampling)):
            n = len(t["steps"])
            if gen.error or not gen.samples:
                out.append(TraceLabel(None, [None] * n, note=f"judge_error: {gen.error}"))
                continue
            sample = gen.samples[0]
            verdict = parse_verdict(sample.text, n)
            if verdict.index is not None and self.cfg.check_reasoning:
                reason = reasoning_error(sample.text, [s["text"] for s in t["steps"]])
                verdict = Verdict(None, reason) if reason else verdict
            out.append(
                TraceLabel(
                    verdict.index,
                    labels_from_first_error(verdict.index, n),
                    tokens=len(sample.offsets),
                    note=verdict.error,
                )
            )
        return out
