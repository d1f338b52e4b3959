"""Training data for the teacher's judge task (ProcessBench format, `compact` template).

The judge thinks through the steps one line each, up to the earliest wrong one, then answers its
index in `\\boxed{}`. How a line is written decides whether a two-million-parameter model can
learn it. Two formats:

- `recompute` (the first teacher's): `[1] 13 - 4 = 9 ok`. The verdict needs the step's claim,
  which is only in the prompt: the model never learned the comparison and answered -1.
- `pairs`: `[1] 13 - 4 = 3; 13 - 4 = 9; 00 39 wrong`. The claim is restated (copying from the
  prompt is easy), recomputed (the model's own skill), then both numbers are written as aligned
  digit pairs (tens, units; zero-padded), so the verdict only compares two adjacent characters at
  fixed offsets. Equality of two numbers at varying distances was not learned in ~3,000 steps;
  adjacent pairs were (teacher-forced verdicts on wrong steps 0 -> 85% in 400 steps).

`drill_example` gives dense verdicts (independent claims, half slipped, every line judged): in
judge tasks most lines are `ok`, and the cheap solution (copy the recomputed value, say ok) wins.
"""

from __future__ import annotations

import random

from stages.arithmetic.problems import (
    CLAIM_RE,
    ArithmeticProblem,
    _slip,
    solution_steps,
    trace_paragraphs,
)
from stages.arithmetic.trees import apply
from stages.arithmetic.truth import first_error, step_truth
from stages.label.judge_format import judge_prompt

VERDICTS = ("ok", "wrong")


def pairs_line(i: int, a: int, op: str, b: int, claimed: int, value: int, verdict: str | None = None) -> str:
    """A `pairs` judge line; `verdict` defaults to whether the claim is right (a judge task passes
    the step's truth, which also counts e.g. a stale operand)."""
    verdict = verdict or ("ok" if claimed == value else "wrong")
    if not (0 <= claimed <= 99 and 0 <= value <= 99):  # outside the digit pairs' reach: rare
        return f"[{i}] {a} {op} {b} = {claimed}; {a} {op} {b} = {value} {verdict}"
    c, v = f"{claimed:02d}", f"{value:02d}"
    return f"[{i}] {a} {op} {b} = {claimed}; {a} {op} {b} = {value}; {c[0]}{v[0]} {c[1]}{v[1]} {verdict}"


def judge_line(i: int, step: str, ok: bool, fmt: str) -> str:
    claim = CLAIM_RE.search(step)
    if claim is None:
        return f"[{i}] {VERDICTS[not ok]}"
    a, op, b, c = claim.groups()
    value = apply(op, int(a), int(b))
    if fmt == "pairs":
        return pairs_line(i, int(a), op, int(b), int(c), value, VERDICTS[not ok])
    return f"[{i}] {a} {op} {b} = {value} {VERDICTS[not ok]}"


def judge_target(steps: list[str], truth: list[bool], fmt: str) -> str:
    bad = first_error(truth)
    lines = [judge_line(i, s, truth[i], fmt) for i, s in enumerate(steps[: bad + 1] if bad >= 0 else steps)]
    return "<think>\n" + "\n\n".join(lines) + f"\n</think>\n\n\\boxed{{{bad}}}"


def judge_example(
    problem: ArithmeticProblem, rng: random.Random, fmt: str = "recompute", p_slip: float = 0.5
) -> tuple[str, str]:
    """A judge task: numbered steps with at most one uncorrected slip (probability `p_slip`)."""
    n_ops = len(solution_steps(problem.tree))
    slip_at = rng.randrange(n_ops) if rng.random() < p_slip else None
    steps = trace_paragraphs(problem, rng, p_check=0.1, p_fix=0.05, slip_at=slip_at)
    target = judge_target(steps, step_truth(problem.tree, steps), fmt)
    return judge_prompt(problem.text, steps, template="compact"), target


def drill_example(problems: list[ArithmeticProblem], rng: random.Random) -> tuple[str, str]:
    """4-7 independent claims from real solution steps, each slipped with probability 1/2; all judged."""
    claims = []
    for _ in range(rng.randint(4, 7)):
        a, op, b, _ = rng.choice(solution_steps(problems[rng.randrange(len(problems))].tree))
        value = apply(op, a, b)
        claims.append((a, op, b, _slip(rng, value) if rng.random() < 0.5 else value, value))
    prompt = "Check:\n" + "\n".join(f"[{i}] {a} {op} {b} = {c}" for i, (a, op, b, c, _) in enumerate(claims))
    return prompt, "\n".join(pairs_line(i, *claim) for i, claim in enumerate(claims))
