"""What each labeler said about each step, told apart from what its first error implies; and where
a pair's two sides diverge.

A labeler that reports a first error labels every later step wrong too (`labels_from_first_error`),
and binary-search MC infers the unvisited steps before it: those labels are carried or inferred,
not verdicts on the step. The page must show which is which, so each step gets one code per
labeler:

| code | meaning |
| --- | --- |
| `+` | its own verdict: right (checked; MC rollouts from it reach the answer; the judge read past it) |
| `-` | its own verdict: wrong (the labeler's first error; a symbolic false claim) |
| `i` | inferred right: MC did not roll out from this step; it lies before MC's first error |
| `c` | carried wrong: after the labeler's first error, labeled wrong because an earlier step is |
| `0` | no checkable claim (symbolic `unknown`) |
| `r` | consensus right again after a repair (a self-corrected trace) |
| `?` | no verdict: the labeler failed on this trace (reason in `notes`) or is off |
"""

from __future__ import annotations

import json
from collections import Counter

from schemas.labels import LABELERS

SHARED_CHARS = 300  # of a pair's shared prefix, the end kept (the context of the divergence)


def labeler_notes(provenance: str | None) -> dict[str, str]:
    """Why each labeler gave no usable verdict on this trace (`misquoted_step`, `rollout_error`, ...)."""
    try:
        prov = json.loads(provenance or "{}")
    except ValueError:
        return {}
    return {k: v["note"] for k, v in prov.items() if isinstance(v, dict) and v.get("note")}


def labelers_run(r: dict) -> dict[str, int | None]:
    """The first error of each labeler that ran on this trace (its provenance names it; a
    registered labeler the recipe left off is not shown as one without a verdict)."""
    try:
        ran = set(json.loads(r["provenance"] or "{}"))
    except ValueError:
        ran = set()
    return {k: v for k in LABELERS if (v := r[f"first_error_{k}"]) is not None or k in ran}


def _ordered(i: int, first: int | None, implied: str) -> str:
    if first is None:
        return "?"
    return implied if first < 0 or i < first else "-" if i == first else "c"


def step_marks(r: dict, steps: list[dict]) -> list[list]:
    """Per step: [symbolic, mc, mc_tally, judge, consensus] codes; mc_tally is [reached, rollouts]
    from the trace's branches, or the MC value alone where the rollouts are not recorded."""
    tally = Counter((b["after"], bool(b["reached"])) for b in r.get("branches") or [])
    fe_mc, fe_judge, fe = r.get("first_error_mc"), r.get("first_error_judge"), r.get("first_error")
    out = []
    for i, s in enumerate(steps):
        sym = {"correct": "+", "wrong": "-", "unknown": "0"}.get(s.get("symbolic"), "?")
        value, n = s.get("mc_value"), tally[(i, True)] + tally[(i, False)]
        if value is not None and fe_mc is not None:
            mc = "c" if 0 <= fe_mc < i else "-" if i == fe_mc or value == 0 else "+"
        else:
            mc = _ordered(i, fe_mc, "i")
        mc_tally = [tally[(i, True)], n] if n else (round(value, 3) if value is not None else None)
        judge = _ordered(i, fe_judge, "+")
        label = s.get("label")
        cons = "?" if label is None else _ordered(i, fe, "+")
        if cons == "c" and label:
            cons = "r"
        out.append([sym, mc, mc_tally, judge, cons])
    return out


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def cut_middle(text: str, limit: int) -> str:
    """`text` within `limit` chars, keeping its head and its end (where the answer is)."""
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    return f"{text[:head]} … [{len(text) - limit:,} chars] … {text[-tail:]}"


def divergence(prefix: str, chosen: str, rejected: str, limit: int) -> dict:
    """A pair as shared context + each side's own part + shared ending: `shared` (the pair's
    prefix and the text both sides start with, its end kept), `chosen` and `rejected` (from the
    first differing word, head and end kept), `tail` (the text both sides end with)."""
    p = _common_prefix(chosen, rejected)
    if p < min(len(chosen), len(rejected)):  # back to a word start: "= 2|0" vs "= 2|1" shows "20" vs "21"
        while p and not chosen[p - 1].isspace():
            p -= 1
    s = _common_prefix(chosen[p:][::-1], rejected[p:][::-1])
    if s < min(len(chosen), len(rejected)) - p:
        while s and not chosen[len(chosen) - s].isspace():
            s -= 1
    shared = prefix + chosen[:p]
    cut = max(0, len(shared) - SHARED_CHARS)
    return {
        "shared": (f"[{cut:,} chars] … " if cut else "") + shared[cut:],
        "shared_chars": len(shared),
        "chosen": cut_middle(chosen[p : len(chosen) - s], limit),
        "rejected": cut_middle(rejected[p : len(rejected) - s], limit),
        "tail": cut_middle(chosen[len(chosen) - s :] if s else "", SHARED_CHARS),
    }
