"""Multi-step integer arithmetic: problems and reference traces.

This is the tiny reasoner's world. Everything here is deterministic from a seed, so the
training set, the held-out eval set and the pipeline's demo set are reproducible and disjoint
(a problem's split is a function of its text, not of the order it was drawn in: `trees.py`).
Because every step of an arithmetic trace can be checked exactly, `truth.py` gives the ground
truth that label-quality benchmarks score labelers against.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from schemas.problems import problem_id_for
from stages.arithmetic.space import require_available
from stages.arithmetic.trees import FIRST, OPERANDS, OPS, Node, Split, _well_formed, apply, split_of

CLAIM_RE = re.compile(r"(-?\d+) ([+\-*]) (-?\d+) = (-?\d+)")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class ArithmeticProblem:
    problem_id: str
    expression: str
    tree: Node
    answer: int
    split: Split

    @property
    def text(self) -> str:
        return f"What is {self.expression}?"


def generate(split: Split, n: int, seed: int = 0, min_ops: int = 2, max_ops: int = 3) -> Iterator[ArithmeticProblem]:
    """`n` distinct problems of one split, deterministically from `seed`.

    The world is finite (40,372 train, 4,844 eval and 5,038 demo problems with 2-3 operations) and
    draws repeat until `n` distinct ones are found, so asking for more than a split holds would
    never end: that raises `ValueError` here, at the call, before anything is drawn.
    """
    require_available(split, n, min_ops, max_ops)
    return _draw(split, n, seed, min_ops, max_ops)


def _draw(split: Split, n: int, seed: int, min_ops: int, max_ops: int) -> Iterator[ArithmeticProblem]:
    rng = random.Random(f"arith-{seed}-{split}")
    seen: set[str] = set()
    while len(seen) < n:
        tree = _random_tree(rng, rng.randint(min_ops, max_ops))
        expr = tree.render()
        if expr in seen or not _well_formed(tree) or split_of(expr) != split:
            continue
        seen.add(expr)
        text = f"What is {expr}?"
        yield ArithmeticProblem(problem_id_for("arithmetic", text), expr, tree, tree.eval(), split)


def _random_tree(rng: random.Random, n_ops: int) -> Node:
    """A left-deep tree, e.g. `(23 + 58) * 4 - 17`: each step combines the running result with
    the next number, so the difficulty is the arithmetic, not parsing precedence."""
    node = Node(rng.randint(FIRST[0], FIRST[-1]))
    for _ in range(n_ops):
        op = rng.choice(OPS)
        node = Node(op=op, left=node, right=Node(rng.randint(OPERANDS[op][0], OPERANDS[op][-1])))
    return node


def _postorder(tree: Node) -> list[Node]:
    if tree.op is None:
        return []
    return _postorder(tree.left) + _postorder(tree.right) + [tree]  # type: ignore[arg-type]


def solution_steps(
    tree: Node, slip_at: int | None = None, rng: random.Random | None = None
) -> list[tuple[int, str, int, int]]:
    """Evaluation order (post-order) as (a, op, b, claimed result). With `slip_at`, that step's
    result is a plausible slip and later steps carry the wrong value forward."""
    vals: dict[int, int] = {}

    def val(n: Node) -> int:
        return n.value if n.op is None else vals[id(n)]

    out = []
    for i, node in enumerate(_postorder(tree)):
        a, b = val(node.left), val(node.right)  # type: ignore[arg-type]
        c = apply(node.op, a, b)  # type: ignore[arg-type]
        if i == slip_at:
            c = _slip(rng or random.Random(0), c)
        vals[id(node)] = c
        out.append((a, node.op, b, c))  # type: ignore[arg-type]
    return out


def _slip(rng: random.Random, value: int) -> int:
    """A plausible arithmetic slip: off by a small amount or one digit changed."""
    wrong = value
    while wrong == value or wrong < 0:
        wrong = (
            value + rng.choice([-10, -2, -1, 1, 2, 10])
            if rng.random() < 0.6
            else int("".join(c if rng.random() > 0.4 else str(rng.randint(0, 9)) for c in str(value)))
        )
    return wrong


def _remaining(tree: Node, done: int, value: int) -> str:
    """A left-deep expression after its first `done` operations are replaced by their `value`."""
    spine = [tree]
    while spine[-1].left is not None and spine[-1].left.op is not None:
        spine.append(spine[-1].left)
    rebuilt = Node(value)
    for node in reversed(spine[: len(spine) - done]):
        rebuilt = Node(op=node.op, left=rebuilt, right=node.right)
    return rebuilt.render()


def trace_paragraphs(
    problem: ArithmeticProblem, rng: random.Random, p_check: float = 0.1, p_fix: float = 0.1, slip_at: int | None = None
) -> list[str]:
    """Thinking paragraphs, one step each: `a op b = c, now <what is left>`, occasional
    self-checks and corrected slips ("Wait, ..."), an optional uncorrected slip at operation
    `slip_at` (carried forward), and a conclusion. Restating what is left keeps every step's
    operands next to it, which is what lets a two-million-parameter model learn the task."""
    paras: list[str] = []
    steps = solution_steps(problem.tree, slip_at, rng)
    last = len(steps) - 1
    for i, (a, op, b, c) in enumerate(steps):
        rest = "" if i == last else f", now {_remaining(problem.tree, i + 1, c)}"
        if i != slip_at and rng.random() < p_fix:
            wrong = _slip(rng, c)
            paras += [f"{a} {op} {b} = {wrong}", f"Wait, {a} {op} {b} = {c}, not {wrong}{rest}."]
        else:
            paras.append(f"{a} {op} {b} = {c}{rest}")
            if i != slip_at and rng.random() < p_check:
                paras.append(f"Wait, let me check: {a} {op} {b} = {c}. Yes.")
    paras.append(f"So the answer is {steps[-1][3]}.")
    return paras


def render_completion(paragraphs: list[str], answer: str) -> str:
    """R1-style completion: `<think>` paragraphs blank-line separated, `</think>`, a boxed line."""
    return f"{THINK_OPEN}\n" + "\n\n".join(paragraphs) + f"\n{THINK_CLOSE}\n\nThe answer is \\boxed{{{answer}}}."


def parse_int(text: str | None) -> int | None:
    try:
        return int(str(text).strip()) if text is not None else None
    except ValueError:
        return None
