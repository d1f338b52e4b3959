"""Exact step truth for arithmetic traces: the ground truth label benchmarks score against.

Because every step of an arithmetic trace can be checked exactly, a trace's earliest wrong step
is known without any labeler (ProcessBench's "earliest paragraph with an error"): a claim that is
false or reduces an operation that is not on the table, and a restatement of what is left
(`..., now 12 - 4 + 1`) that is not what is left.
"""

from __future__ import annotations

import re

from stages.arithmetic.exact import parse
from stages.arithmetic.problems import CLAIM_RE
from stages.arithmetic.trees import Node, apply

_RESTATED = re.compile(r",\s*now\s+(.+?)\.?\s*$")
_REFLECTION = re.compile(r"\W*wait\b", re.IGNORECASE)


def _current_tree(tree: Node, values: dict[int, int]) -> Node:
    """`tree` with every reduced operation replaced by the value the trace gave it."""
    if id(tree) in values:
        return Node(values[id(tree)])
    if tree.op is None:
        return tree
    return Node(op=tree.op, left=_current_tree(tree.left, values), right=_current_tree(tree.right, values))  # type: ignore[arg-type]


def _restates_what_is_left(text: str, tree: Node, values: dict[int, int]) -> bool:
    """False when the step says `now <expr>` and `<expr>` is not the expression left after the
    trace's reductions so far (values as the trace claimed them: a slip carried forward is the
    slip's error, not the restatement's)."""
    restated = _RESTATED.search(text)
    if restated is None:
        return True
    said = re.sub(r"\s+", "", restated.group(1))
    return said == re.sub(r"\s+", "", _current_tree(tree, values).render())


def step_truth(tree: Node, steps: list[str]) -> list[bool]:
    """Exact validity of each step of a trace for this expression.

    A claim `a op b = c` is valid when it reduces an operation whose operands are both known
    now (from the problem or earlier steps) and `c` is right; a re-check or correction of an
    earlier reduction is valid when its result is right. A step that restates what is left must
    restate it exactly. A step with no claim is valid unless it concludes an answer that differs
    from the value reached so far.
    """
    return _walk(tree, steps)[0]


def step_repairs(tree: Node, steps: list[str]) -> dict[int, int | None]:
    """Per invalid step: the later step that re-states each reduction it got wrong with the right
    result (a correction: `Wait, 16 - 7 = 9, not 8`), None when it is never repaired or its error
    is not a wrong result (a claim off the table, a wrong restatement or conclusion)."""
    return _walk(tree, steps)[1]


def _walk(tree: Node, steps: list[str]) -> tuple[list[bool], dict[int, int | None]]:
    values: dict[int, int] = {}
    history: dict[tuple[int, str, int], int] = {}
    # Repairs: a step's wrong results stay open until each is restated right; a step that is
    # wrong in another way (a claim off the table, a wrong restatement) cannot be repaired.
    slipped: dict[tuple[int, str, int], set[int]] = {}  # reduction -> steps that got it wrong
    open_slips: dict[int, set[tuple[int, str, int]]] = {}
    repairs: dict[int, int | None] = {}
    unrepairable: set[int] = set()

    def current(node: Node) -> Node:
        return Node(values[id(node)]) if id(node) in values else node

    def reducible(node: Node) -> list[Node]:
        if node.op is None or id(node) in values:
            return []
        left, right = current(node.left), current(node.right)  # type: ignore[arg-type]
        if left.op is None and right.op is None:
            return [node]
        return reducible(node.left) + reducible(node.right)  # type: ignore[arg-type]

    out: list[bool] = []
    for step, text in enumerate(steps):
        ok = True
        claims = CLAIM_RE.findall(text)
        for a_s, op, b_s, c_s in claims:
            a, b, c = int(a_s), int(b_s), int(c_s)
            key = (a, op, b)
            match = next(
                (
                    n
                    for n in reducible(tree)
                    if n.op == op and current(n.left).value == a and current(n.right).value == b  # type: ignore[arg-type]
                ),
                None,
            )
            if match is not None and key in history and _REFLECTION.match(text):
                match = None  # `Wait, 0 * 4 = 0` re-checks the reduction it repeats, not the next one
            if match is None and key not in history:
                ok = False
                unrepairable.add(step)
                continue
            right = c == apply(op, a, b)
            ok &= right
            if match is not None:
                values[id(match)] = c
                history[key] = id(match)
            elif right:
                values[history[key]] = c
            if not right:
                slipped.setdefault(key, set()).add(step)
                open_slips.setdefault(step, set()).add(key)
            for earlier in slipped.pop(key, set()) if right else ():
                open_slips[earlier].discard(key)
                if not open_slips[earlier]:
                    repairs[earlier] = step
        if claims:
            if not _restates_what_is_left(text, tree, values):
                ok = False
                unrepairable.add(step)
        else:
            stated = re.search(r"answer is\s*(-?\d+)", text)
            if stated and id(tree) in values:
                ok = int(stated.group(1)) == values[id(tree)]
                if not ok:
                    unrepairable.add(step)
        if not ok:
            repairs.setdefault(step, None)
        out.append(ok)
    return out, {i: None if i in unrepairable else j for i, j in repairs.items()}


def first_error(truth: list[bool]) -> int:
    return next((i for i, ok in enumerate(truth) if not ok), -1)


_QUESTION = re.compile(r"What is (.+)\?")


def problem_step_truth(problem: str, steps: list[str]) -> list[bool] | None:
    """Exact truth of each step of a trace for a bundled arithmetic problem (`What is EXPR?`);
    None for any other problem (it has no exact step truth)."""
    m = _QUESTION.fullmatch(problem.strip())
    try:
        return step_truth(parse_expression(m.group(1)), steps) if m else None
    except ValueError:
        return None


_EXPRESSION = re.compile(r"[\d\s+\-*()]+")


def parse_expression(expr: str) -> Node:
    """Parse `+ - *` integer expressions with parentheses (precedence and left associativity)
    into the tree the generator would have built, so step truth can be computed from text. The
    bounded parser is the symbolic checker's (`exact.parse`); this world has no
    unary minus, division or powers."""
    tree = parse(expr) if _EXPRESSION.fullmatch(expr) else None
    if tree is None:
        raise ValueError(f"not an arithmetic expression: {expr!r}")
    return _node(tree, expr)


def _node(tree: tuple, expr: str) -> Node:
    if tree[0] == "num":
        return Node(int(tree[1]))
    if tree[0] == "neg":
        raise ValueError(f"not an arithmetic expression (unary minus): {expr!r}")
    return Node(op=tree[0], left=_node(tree[1], expr), right=_node(tree[2], expr))
