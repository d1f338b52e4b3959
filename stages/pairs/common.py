"""What every pair builder shares: the pair record, its stable id, and the per-problem cap."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable


def pair_id(kind: str, problem_id: str, prefix: str, chosen: str, rejected: str) -> str:
    key = "\x00".join([kind, problem_id, prefix, chosen, rejected])
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def make_pair(
    kind: str,
    source: str,
    trace: dict,
    prefix: str,
    chosen: str,
    rejected: str,
    chosen_conf: float | None,
    rejected_conf: float | None,
    margin: float,
    provenance: dict,
) -> dict | None:
    """A `pairs` row, or None when the two sides are the same text (no preference to learn)."""
    if chosen.strip() == rejected.strip():
        return None
    return {
        "pair_id": pair_id(kind, trace["problem_id"], prefix, chosen, rejected),
        "kind": kind,
        "problem_id": trace["problem_id"],
        "problem": trace["problem"],
        "prefix": prefix,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_confidence": chosen_conf,
        "rejected_confidence": rejected_conf,
        "margin": max(0.0, margin),
        "source": source,
        "provenance": json.dumps(provenance, sort_keys=True),
    }


def dedupe_and_cap(
    pairs: Iterable[dict | None], max_per_problem: int, dropped: Counter[str] | None = None
) -> list[dict]:
    """Drop duplicate pairs (same id) and keep at most `max_per_problem` per (problem, kind), in
    the builders' priority order, so easy problems with many traces do not dominate. `dropped`,
    when given, counts the candidates left out by reason (`duplicate`, `per_problem_cap`)."""
    seen: set[str] = set()
    count: dict[tuple[str, str], int] = defaultdict(int)
    dropped = Counter() if dropped is None else dropped
    out = []
    for p in pairs:
        if p is None:
            continue
        if p["pair_id"] in seen:
            dropped["duplicate"] += 1
            continue
        key = (p["problem_id"], p["kind"])
        if count[key] >= max_per_problem:
            dropped["per_problem_cap"] += 1
            continue
        seen.add(p["pair_id"])
        count[key] += 1
        out.append(p)
    return out


def by_problem(traces: Iterable[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for t in traces:
        groups[t["problem_id"]].append(t)
    return groups
