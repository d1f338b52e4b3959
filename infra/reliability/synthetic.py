"""Synthetic `problems` and `traces` shards at any scale, without a model.

Reliability tests and the load benchmark need real-shaped traces by the hundred thousand: a
model would make them slow and a hand-built table would skip the code that matters. So the
bundled arithmetic generator writes the thinking (steps, self-corrections, carried-forward
slips, exactly as the tiny reasoner was trained on), a digit-level tokenizer stands in for the
model's, and the traces go through the generate stage's trace builder
(`stages.trace_rows.build_trace`: thinking/answer split, segmentation, answer extraction, step
confidence). Everything is seeded: the same arguments always write the same rows.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from flows.pipeline import PIPELINE
from schemas import PROBLEMS, TRACES
from stages.arithmetic.problems import (
    THINK_OPEN,
    ArithmeticProblem,
    render_completion,
    solution_steps,
    trace_paragraphs,
)
from stages.arithmetic.trees import Split
from stages.arithmetic.truth import parse_expression
from stages.engine.types import Sample, SamplingConfig
from stages.problems.stage import arithmetic_problems
from stages.segment import SegmentConfig
from stages.shards import batched, to_table, write_table
from stages.trace_rows import build_trace

MODEL = "synthetic:arithmetic"
_TOKEN = re.compile(r"\d|[A-Za-z]+|\s+|<[^<>\s]{1,8}>|.", re.DOTALL)  # digit-level, like the tiny reasoner's


def synthetic_problems(n: int, seed: int = 0, split: Split = "train") -> list[dict]:
    """`n` distinct bundled arithmetic problems (rows of `problems`)."""
    return list(arithmetic_problems(split, n, seed))


def _sample(text: str, rng: np.random.Generator, slip_from: int | None) -> Sample:
    """A completion with digit-level tokens and plausible confidences: tokens after a slip are
    less sure of themselves, so step confidence carries some signal, as a real model's does."""
    offsets = [m.start() for m in _TOKEN.finditer(text)]
    n = len(offsets)
    logprobs = -np.abs(rng.normal(0.0, 0.35, n))
    if slip_from is not None:
        later = np.asarray(offsets) >= slip_from
        logprobs[later] -= np.abs(rng.normal(0.4, 0.6, int(later.sum())))
    entropies = np.abs(rng.normal(0.3, 0.2, n))
    return Sample(text, list(range(n)), "stop", logprobs.tolist(), entropies.tolist(), offsets)


def problem_traces(problem: dict, per_problem: int, seed: int, segmentation: SegmentConfig) -> list[dict]:
    """`per_problem` traces of one problem; about half carry an uncorrected slip."""
    expression = problem["problem"].removeprefix("What is ").removesuffix("?")
    tree = parse_expression(expression)
    arith = ArithmeticProblem(problem["problem_id"], expression, tree, tree.eval(), "train")
    rng = random.Random(f"{seed}-{problem['problem_id']}")
    nprng = np.random.default_rng(rng.getrandbits(32))
    n_ops = len(solution_steps(tree))
    sampling_json = SamplingConfig(n=per_problem, seed=seed).model_dump_json()
    rows = []
    for i in range(per_problem):
        slip_at = rng.randrange(n_ops) if rng.random() < 0.5 else None
        paragraphs = trace_paragraphs(arith, rng, slip_at=slip_at)
        answer = paragraphs[-1].removeprefix("So the answer is ").removesuffix(".")
        text = render_completion(paragraphs, answer).removeprefix(THINK_OPEN)
        slip_from = None if slip_at is None else text.find(" = ", 0)  # a coarse marker is enough
        sample = _sample(text, nprng, slip_from)
        rows.append(build_trace(problem, i, sample, MODEL, sampling_json, problem["problem"] + "<think>", segmentation))
    return rows


def synthetic_traces(problems: list[dict], per_problem: int = 8, seed: int = 0) -> Iterator[dict]:
    segmentation = SegmentConfig()
    for problem in problems:
        yield from problem_traces(problem, per_problem, seed, segmentation)


def write_synthetic_run(
    root: Path, n_traces: int, per_problem: int = 8, shard_problems: int = 512, seed: int = 0
) -> tuple[list[Path], list[Path]]:
    """The problems and generate stages' shards of a run under `root` (where the pipeline spec puts
    them) for `n_traces` traces; every problem's traces in one shard, named as the generate stage
    names its chunks. Returns both path lists."""
    problems = synthetic_problems(-(-n_traces // per_problem), seed)
    problem_paths, trace_paths = [], []
    for i, block in enumerate(batched(problems, shard_problems)):
        name = f"{i:05d}.parquet"
        problem_paths.append(write_table(to_table(block, PROBLEMS), PIPELINE.path("problems", root) / name, PROBLEMS))
        traces = list(synthetic_traces(block, per_problem, seed))
        path = PIPELINE.path("generate", root) / f"{i:05d}-00000.parquet"
        trace_paths.append(write_table(to_table(traces, TRACES), path, TRACES))
    return problem_paths, trace_paths
