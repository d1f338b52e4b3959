"""Exact, bounded arithmetic for the symbolic step checker: is `lhs = rhs` true?

A claim's sides are numbers, `+ - * / ^` and parentheses only (`claims.py` finds them in prose and
leaves anything touching a variable to the judge). Both sides are parsed by a small
recursive-descent parser (never `eval`) and evaluated with `fractions.Fraction`, so `1/3 + 1/6 = 1/2`
is checked exactly. Every size is capped (side length, digits, nesting, the bits of every
intermediate value), so hostile text such as `9**9**9**9 = 1` or a 10,000-digit number gives
"unknown" (None) at once instead of a hang, and so does anything undefined (1/0, 4^(1/2)).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from fractions import Fraction

MAX_SIDE_CHARS = 300  # one side of a claim
MAX_DIGITS = 200  # one number literal
MAX_BITS = 40_000  # any intermediate numerator/denominator (~12,000 digits)
MAX_DEPTH = 40  # parenthesis / sign / power nesting

Node = tuple


class Uncheckable(ValueError):
    """The claim is well-formed but too big or undefined to evaluate (huge power, 1/0, 4^(1/2))."""


@dataclass(frozen=True)
class Claim:
    lhs: str
    rhs: str

    @property
    def text(self) -> str:
        return f"{self.lhs} = {self.rhs}"


# --- parsing (no evaluation) -----------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|([-+*/^()]))")


def tokenize(expr: str) -> list[str] | None:
    tokens, pos, expr = [], 0, expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            return None
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
    return tokens


def parse(expr: str) -> Node | None:
    """`expr` as a tree of `("num", literal)`, `("neg", x)` and `(op, left, right)`; None when it is
    not a complete, bounded arithmetic expression. Grammar: sum of products of signed powers;
    `^` is right-associative and binds tighter than a unary minus (`-2^2` is -4)."""
    if len(expr) > MAX_SIDE_CHARS:
        return None
    tokens = tokenize(expr)
    if not tokens:
        return None
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def binary(ops: str, operand, depth: int) -> Node:
        node = operand(depth)
        while peek() is not None and peek() in ops:
            node = (take(), node, operand(depth))
        return node

    def sum_(depth: int) -> Node:
        return binary("+-", product, depth)

    def product(depth: int) -> Node:
        return binary("*/", signed, depth)

    def signed(depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise SyntaxError("too deep")
        if peek() in ("-", "+"):
            sign = take()
            inner = signed(depth + 1)
            return ("neg", inner) if sign == "-" else inner
        base = atom(depth)
        if peek() == "^":
            take()
            return ("^", base, signed(depth + 1))
        return base

    def atom(depth: int) -> Node:
        token = take() if peek() is not None else None
        if token == "(":
            node = sum_(depth + 1)
            if peek() != ")":
                raise SyntaxError("unbalanced")
            take()
            return node
        if token is None or token in "+-*/^)":
            raise SyntaxError("operand expected")
        return ("num", token)

    try:
        tree = sum_(0)
    except (SyntaxError, IndexError):
        return None
    return tree if pos == len(tokens) else None


def has_operation(node: Node) -> bool:
    """A binary operation anywhere: `2 + 3`, `-(1/2)`; a bare (signed) number is not an operation."""
    return node[0] not in ("num", "neg") or (node[0] == "neg" and has_operation(node[1]))


# --- exact evaluation ------------------------------------------------------------------------------


def _bits(x: Fraction) -> int:
    return max(x.numerator.bit_length(), x.denominator.bit_length())


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise Uncheckable("non-integer exponent")
    e = exponent.numerator
    if base in (0, 1, -1):
        if base == 0 and e < 0:
            raise Uncheckable("0 to a negative power")
        return base**e
    if _bits(base) * abs(e) > MAX_BITS:
        raise Uncheckable("power too large")
    return base**e


def _divide(a: Fraction, b: Fraction) -> Fraction:
    if b == 0:
        raise Uncheckable("division by zero")
    return a / b


_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": _divide, "^": _power}


def evaluate(node: Node) -> Fraction:
    """Exact value of a parsed tree; `Uncheckable` when a number, power or quotient is out of bounds."""
    if node[0] == "num":
        if len(node[1]) > MAX_DIGITS + 1:
            raise Uncheckable("number too long")
        return Fraction(node[1])
    if node[0] == "neg":
        return -evaluate(node[1])
    value = _OPS[node[0]](evaluate(node[1]), evaluate(node[2]))
    if _bits(value) > MAX_BITS:
        raise Uncheckable("value too large")
    return value


def check_claim(claim: Claim) -> bool | None:
    """True/False when both sides evaluate exactly, None when either side cannot be checked."""
    lhs, rhs = parse(claim.lhs), parse(claim.rhs)
    if lhs is None or rhs is None:
        return None
    try:
        return evaluate(lhs) == evaluate(rhs)
    except Uncheckable:
        return None
