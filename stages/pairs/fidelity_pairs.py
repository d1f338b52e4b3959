"""Fidelity pairs: a trace whose thinking agrees with its answer and has no flawed step, over a
misaligned (thinking concludes one thing, the answer says another) or rationalized (correct
answer over a flaw that is never repaired) trace of the same problem.

A self-corrected trace (its slips restated right by later steps, `stages/arithmetic/repair.py`) is on
neither side: catching one's own slip is the use of thinking the corpus wants to keep, so it is
never rejected, and with a located first error it is not the clean trace a chosen side must be.
"""

from __future__ import annotations

from stages.arithmetic.repair import repairs
from stages.pairs.common import by_problem, make_pair


def faithful(t: dict) -> bool:
    return bool(
        t["final_correct"] and t["thinking_answer_agrees"] and t["consensus"] == "agree" and t["first_error"] == -1
    )


def unfaithful_reason(t: dict) -> str | None:
    """Misaligned thinking, or a correct answer over a flaw never repaired: flawed by the consensus,
    or by the symbolic checker alone (a false arithmetic claim is a flaw whatever others say,
    unless a later step restates it right)."""
    if t["thinking_answer_agrees"] is False:
        return "misaligned"
    if t["rationalized"]:
        return "rationalized"
    symbolic = t["first_error_symbolic"]  # 0 is a flaw at the first step, None no verdict
    if t["self_corrected"] or not t["final_correct"] or symbolic is None or symbolic < 0:
        return None
    if any(j is None for j in repairs([s["text"] for s in t["steps"]]).values()):
        return "correct_over_false_claim"
    return None


def fidelity_pairs(traces: list[dict]) -> list[dict | None]:
    pairs: list[dict | None] = []
    for group in by_problem(traces).values():
        good = sorted((t for t in group if faithful(t)), key=lambda t: t["trace_id"])
        bad = sorted(((t, r) for t in group if (r := unfaithful_reason(t))), key=lambda x: x[0]["trace_id"])
        for c, (r, reason) in zip(good * max(1, len(bad)), bad):
            pairs.append(
                make_pair(
                    "fidelity",
                    "fidelity",
                    c,
                    "",
                    c["completion"],
                    r["completion"],
                    c["answer_confidence"],
                    r["answer_confidence"],
                    1.0,
                    {"chosen_trace": c["trace_id"], "rejected_trace": r["trace_id"], "rejected_reason": reason},
                )
            )
    return pairs
