"""`pairs` (preference pairs with provenance) and `frontier` (the student's view of each trace)."""

import json

from datasets import Features, Value

PAIRS = Features(
    {
        "pair_id": Value("string"),  # hash of problem, prefix, chosen and rejected (dedup key, across kinds)
        "kind": Value("string"),  # step (CASPO) | trace (RLSF) | fidelity; the first builder's if several made it
        "problem_id": Value("string"),
        "problem": Value("string"),
        "prefix": Value("string"),  # assistant text shared by both sides ("" for trace and fidelity pairs)
        "chosen": Value("string"),  # continuation after `prefix`
        "rejected": Value("string"),
        "chosen_confidence": Value("float32"),  # mean token logprob of the chosen side (step or answer span)
        "rejected_confidence": Value("float32"),
        "margin": Value("float32"),  # label/value difference between the sides (kind-specific, >= 0)
        "source": Value("string"),  # next_step_sampling | sibling_traces | trace_ranking | fidelity
        # JSON: trace ids, step index, labels and labelers behind each side; `kinds` (every kind that
        # made the pair) and `merged` (each other kind's source, margin and provenance)
        "provenance": Value("string"),
    }
)

FRONTIER = Features(
    {
        "trace_id": Value("string"),
        "problem_id": Value("string"),
        "pass_rate": Value("float32"),  # the student's own pass rate on the problem
        "nll": Value("float32"),  # mean per-token NLL of the response given the prompt, under the student
        "nll_unconditioned": Value("float32"),  # mean per-token NLL of the response alone
        "ifd": Value("float32"),  # PPL(A|Q) / PPL(A): instruction-following difficulty
        "keep": Value("bool"),
        "drop_reason": Value("string"),  # "" when kept: pass_rate_too_low | pass_rate_too_high | ifd_too_high | ...
    }
)


def pair_kinds(row: dict) -> list[str]:
    """Every kind that made a pair (a `pairs` or `dpo` row): its provenance's `kinds`, else its
    `kind` (rows written before pairs were merged across kinds)."""
    return json.loads(row["provenance"] or "{}").get("kinds") or [row["kind"]]
