"""RLSF-style trace pairs: among a problem's traces, a correct trace whose answer span the model
was confident in, over a wrong trace (confident-wrong first) or a less confident correct one."""

from __future__ import annotations

from stages.pairs.common import by_problem, make_pair


def trace_pairs(traces: list[dict], min_chosen_confidence: float, min_confidence_margin: float) -> list[dict | None]:
    pairs: list[dict | None] = []
    for group in by_problem(traces).values():
        scored = [t for t in group if t["answer_confidence"] is not None and t["finish_reason"] == "stop"]
        correct = sorted((t for t in scored if t["final_correct"]), key=lambda t: -t["answer_confidence"])
        wrong = sorted((t for t in scored if not t["final_correct"]), key=lambda t: -t["answer_confidence"])
        chosen = [t for t in correct if t["answer_confidence"] >= min_chosen_confidence]
        for c in chosen:
            rejects = wrong + [
                t for t in correct if c["answer_confidence"] - t["answer_confidence"] >= min_confidence_margin
            ]
            for r in rejects:
                both_correct = bool(r["final_correct"])
                pairs.append(
                    make_pair(
                        "trace",
                        "trace_ranking",
                        c,
                        "",
                        c["completion"],
                        r["completion"],
                        c["answer_confidence"],
                        r["answer_confidence"],
                        (0.0 if both_correct else 1.0) + max(0.0, c["answer_confidence"] - r["answer_confidence"]),
                        {
                            "chosen_trace": c["trace_id"],
                            "rejected_trace": r["trace_id"],
                            "rejected_correct": both_correct,
                        },
                    )
                )
    return pairs
