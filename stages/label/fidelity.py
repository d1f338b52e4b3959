"""Fidelity metrics: do the thinking and the answer agree, and is the thinking worth its length?

Per trace: final correctness, the thinking's own conclusion and whether it matches the final
answer, a correct answer over flawed steps (self-corrected when a later step repairs the flaw,
else post-hoc rationalization: `repair.py`, set by the label stage), per-step information gain
(how much each step raises log p(gold answer) under the scoring model) and overthinking (thinking
length relative to the correct traces of the same problem).
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from pydantic import BaseModel, ConfigDict

from stages.engine import Engine
from stages.segment import step_prefix
from stages.verification.verify import verify_answer


class FidelityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verifier: str = "math"
    info_gain: bool = True
    # What the scoring model is given after a thinking prefix, before the gold answer is scored.
    answer_prefix: str = "\n</think>\n\nThe answer is \\boxed{"
    answer_suffix: str = "}"


def answer_fidelity(trace: dict, verifier: str) -> dict:
    final, concluded, gold = trace["final_answer"], trace["thinking_answer"], trace["gold_answer"]
    agrees = None if final is None or concluded is None else bool(verify_answer(final, concluded, verifier))
    return {
        "final_correct": bool(verify_answer(gold, final, verifier)),
        "thinking_correct": bool(verify_answer(gold, concluded, verifier)),
        "thinking_answer_agrees": agrees,
    }


def overthinking(traces: list[dict], correct: list[bool]) -> list[float | None]:
    """Thinking tokens over the median of the correct traces of the same problem."""
    by_problem: dict[str, list[int]] = defaultdict(list)
    for t, ok in zip(traces, correct):
        if ok and t["thinking_tokens"] is not None:  # None: imported without a tokenizer, length unknown
            by_problem[t["problem_id"]].append(t["thinking_tokens"])
    out = []
    for t in traces:
        ref = by_problem.get(t["problem_id"])
        med = statistics.median(ref) if ref else 0
        out.append(t["thinking_tokens"] / med if med and t["thinking_tokens"] is not None else None)
    return out


def information_gain(engine: Engine, traces: list[dict], cfg: FidelityConfig) -> list[list[float | None]]:
    """Per step i: log p(gold | question + steps <= i) - log p(gold | question + steps < i)."""
    prompts, conts, spans = [], [], []
    for t in traces:
        spans.append((len(prompts), len(t["steps"]) + 1))
        for i in range(-1, len(t["steps"])):
            prompts.append(step_prefix(t, i) + cfg.answer_prefix)
            conts.append(f"{t['gold_answer']}{cfg.answer_suffix}")
    scores = [None if lps is None else sum(lps) for lps in engine.score(prompts, conts)] if prompts else []
    out = []
    for start, n in spans:  # a prefix too long to score leaves its steps' gains unknown
        s = scores[start : start + n]
        out.append([None if s[i] is None or s[i + 1] is None else s[i + 1] - s[i] for i in range(n - 1)])
    return out
