"""The arithmetic world's expression trees: what a problem may hold, and which split it is in.

A problem is a left-deep tree of `+ - *` over small integers (`FIRST`, `OPERANDS`) whose every
intermediate value stays in [0, 30) (`_well_formed`); its split is a function of its text, so the
train, eval and demo splits are disjoint whatever order problems are drawn in. The generator
(`problems.py`) draws such trees and the count of the world (`space.py`) enumerates them, both
with these rules.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

Split = Literal["train", "eval", "demo"]
OPS = ("+", "-", "*")
_PREC = {"+": 1, "-": 1, "*": 2}
# A problem's split is decided by the hash of its text: 80% train, 10% eval, 10% demo.
_SPLIT_BUCKETS: dict[Split, range] = {"train": range(0, 8), "eval": range(8, 9), "demo": range(9, 10)}
# The numbers a tree may draw: its first number, then each operation's right operand. Shared with
# `space.py`, which counts the problems these allow, so the sampler and the count agree.
FIRST = range(1, 10)
OPERANDS = {"+": range(1, 10), "-": range(1, 10), "*": range(2, 6)}


@dataclass(frozen=True)
class Node:
    """A binary expression tree; a leaf has `op is None` and holds `value`."""

    value: int = 0
    op: str | None = None
    left: Node | None = None
    right: Node | None = None

    def eval(self) -> int:
        if self.op is None:
            return self.value
        return apply(self.op, self.left.eval(), self.right.eval())  # type: ignore[union-attr]

    def render(self) -> str:
        if self.op is None:
            return str(self.value)
        left, right = self.left.render(), self.right.render()  # type: ignore[union-attr]
        if self.left.op and _PREC[self.left.op] < _PREC[self.op]:  # type: ignore[union-attr]
            left = f"({left})"
        r = self.right.op  # type: ignore[union-attr]
        if r and _PREC[r] <= _PREC[self.op]:  # keeps evaluation order unambiguous
            right = f"({right})"
        return f"{left} {self.op} {right}"


def apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def split_of(text: str) -> Split:
    bucket = int(hashlib.sha256(text.encode()).hexdigest(), 16) % 10
    return next(s for s, r in _SPLIT_BUCKETS.items() if bucket in r)


def _well_formed(node: Node) -> bool:
    """Keep intermediate values in [0, 30) and operands to one digit, so every step is within
    reach of a two-million-parameter model trained for minutes on a CPU (its slips are real)."""
    if node.op is None:
        return True
    if not (_well_formed(node.left) and _well_formed(node.right)):  # type: ignore[arg-type]
        return False
    if node.op == "*" and min(node.left.eval(), node.right.eval()) > 9:  # type: ignore[union-attr]
        return False
    return 0 <= node.eval() < 30
