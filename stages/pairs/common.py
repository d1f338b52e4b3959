"""What every pair builder shares: the pair record, its stable id, and the per-problem cap."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable


def pair_id(problem_id: str, prefix: str, chosen: str, rejected: str) -> str:
    """The pair's texts, not its kind: two builders that make the same pair make one row."""
    key = "\x00".join([problem_id, prefix, chosen, rejected])
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
        "pair_id": pair_id(trace["problem_id"], prefix, chosen, rejected),
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
        "provenance": json.dumps({**provenance, "kinds": [kind]}, sort_keys=True),
    }


def dedupe_and_cap(
    pairs: Iterable[dict | None], max_per_problem: int, dropped: Counter[str] | None = None
) -> list[dict]:
    """One row per pair of texts, and at most `max_per_problem` per (problem, kind), in the
    builders' priority order, so easy problems with many traces do not dominate. `dropped`, when
    given, counts the candidates left out by reason (`duplicate`, `per_problem_cap`).

    A pair two builders both make (a trace pair that is also a fidelity pair) would be trained on
    twice by DPO: it is kept once, under the first kind, and the other kinds join its provenance
    (`kinds`, and per kind its source, margin and provenance under `merged`) without using their cap.
    """
    dropped = Counter() if dropped is None else dropped
    kept: dict[str, dict] = {}
    count: dict[tuple[str, str], int] = defaultdict(int)
    for p in pairs:
        if p is None:
            continue
        if (first := kept.get(p["pair_id"])) is not None:
            kept[p["pair_id"]] = merge_kinds(first, p)
            dropped["duplicate"] += 1
            continue
        key = (p["problem_id"], p["kind"])
        if count[key] >= max_per_problem:
            dropped["per_problem_cap"] += 1
            continue
        count[key] += 1
        kept[p["pair_id"]] = p
    return list(kept.values())


def merge_kinds(first: dict, other: dict) -> dict:
    """`first` with `other`'s kind added to its provenance (a repeat of a kind it has adds nothing)."""
    prov = json.loads(first["provenance"])
    if other["kind"] in prov["kinds"]:
        return first
    extra = {k: v for k, v in json.loads(other["provenance"]).items() if k != "kinds"}
    prov["kinds"] = [*prov["kinds"], other["kind"]]
    prov.setdefault("merged", {})[other["kind"]] = {"source": other["source"], "margin": other["margin"], **extra}
    return {**first, "provenance": json.dumps(prov, sort_keys=True)}


def by_problem(traces: Iterable[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for t in traces:
        groups[t["problem_id"]].append(t)
    return groups
