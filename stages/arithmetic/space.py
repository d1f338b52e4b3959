"""How many distinct problems the arithmetic world holds, per split.

`problems.generate` draws random trees until it has `n` distinct problems of a split, so it
must know before it starts whether the split holds `n` at all (otherwise it would draw forever).
Counting all splits together is cheap: a well-formed left-deep tree extends by looking only at
its running value, so a dynamic program over values counts them without building any. A split
is decided by a hash of the text, so counting one means rendering and hashing every problem;
that is done only when it could matter (see `require_available`).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator

from stages.arithmetic.trees import _SPLIT_BUCKETS, FIRST, OPERANDS, OPS, Node, Split, _well_formed, split_of

# Below this many problems in all, a split is counted exactly whatever `n` is: it takes well under
# a second, and a small world's hash buckets can be far from their 80/10/10 shares.
ALWAYS_COUNT = 10_000


def _steps(value: int) -> Iterator[Node]:
    """The well-formed operations that can follow a running `value`. Whether a left-deep tree
    stays well-formed depends only on its running value, and a one-operation tree on a leaf of
    that value asks `_well_formed` exactly that, so the generator's rule is reused, not copied."""
    for op in OPS:
        for b in OPERANDS[op]:
            step = Node(op=op, left=Node(value), right=Node(b))
            if _well_formed(step):
                yield step


@functools.cache
def total(min_ops: int = 2, max_ops: int = 3) -> int:
    """Distinct problems of every split together with `min_ops`..`max_ops` operations (distinct
    trees render to distinct text: a left-deep tree's brackets are exactly the ones it needs)."""
    ways = Counter({a: 1 for a in FIRST})  # running value -> how many trees reach it
    count = 0
    for k in range(max_ops + 1):
        count += sum(ways.values()) if k >= min_ops else 0
        following: Counter[int] = Counter()
        for value, w in ways.items():
            for step in _steps(value):
                following[step.eval()] += w
        ways = following
    return count


def expressions(min_ops: int = 2, max_ops: int = 3) -> Iterator[str]:
    """Every expression `generate` can draw with `min_ops`..`max_ops` operations, each once."""
    stack = [(Node(a), 0) for a in FIRST]
    while stack:
        tree, k = stack.pop()
        if k >= min_ops:
            yield tree.render()
        if k < max_ops:
            stack += [(Node(op=s.op, left=tree, right=s.right), k + 1) for s in _steps(tree.eval())]


@functools.cache
def available(split: Split, min_ops: int = 2, max_ops: int = 3) -> int:
    """Distinct problems of one split: every expression rendered and hashed (about half a second
    with 2-3 operations, cached per process)."""
    return sum(split_of(e) == split for e in expressions(min_ops, max_ops))


def require_available(split: Split, n: int, min_ops: int = 2, max_ops: int = 3) -> None:
    """Raise `ValueError` when `split` holds fewer than `n` distinct problems.

    The exact count costs about as much as drawing the whole world, so it is skipped when `n` is
    under a quarter of the split's share of a large world: sha256 buckets of thousands of
    problems are within a few percent of their shares, never a factor four. At or above that, `n`
    draws cost the same order as the count, so counting never makes a call much slower.
    """
    if min_ops > max_ops:
        raise ValueError(f"min_ops ({min_ops}) is more than max_ops ({max_ops})")
    everything = total(min_ops, max_ops)
    share = len(_SPLIT_BUCKETS[split]) / sum(len(r) for r in _SPLIT_BUCKETS.values())
    if everything >= ALWAYS_COUNT and n < everything * share / 4:
        return
    have = available(split, min_ops, max_ops)
    if n > have:
        raise ValueError(
            f"arithmetic split {split!r} holds {have:,} distinct problems with {min_ops}-{max_ops} operations, "
            f"so {n:,} cannot be drawn; ask for at most {have:,} (or another split, or more operations)"
        )


def split_texts(split: Split) -> list[str]:
    """Every problem text a split can hold (with the generator's default 2-3 operations),
    enumerated, not drawn: drawing a whole split at random would take a coupon collector's time."""
    return [f"What is {e}?" for e in expressions() if split_of(e) == split]  # ArithmeticProblem.text
