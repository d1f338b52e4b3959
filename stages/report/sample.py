"""Which traces the page embeds, and what of each: a deterministic, stated policy.

A 100k-trace corpus cannot be embedded whole, and a uniform sample would mostly miss the traces
worth inspecting. So: first the traces matching each filter, up to a quota per filter, then a
seeded uniform sample of the rest. "Seeded" means ordered by sha256(f"{seed}:{trace_id}"): it
depends on nothing but the ids and the seed (not on polars' unstable hash or shard order), so a
re-run shows the same traces. Long texts are cut to a per-step and per-trace budget so a page's
size is bounded by `max_traces`, whatever the traces' lengths.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import polars as pl

from stages.report.marks import divergence, labeler_notes, labelers_run, step_marks
from stages.report.stats import FILTERS, filter_exprs

STEP_CHARS = 1200  # text kept per step
TRACE_CHARS = 5000  # step text kept per trace, in total
FIELD_CHARS = 600  # problem, answer text, provenance
PAIR_CHARS = 600  # each side of a pair past the shared prefix (its head and its end: the answer)
MAX_STEPS = 120  # steps listed per trace (labels only once the text budget is spent)
MAX_PAIRS = 10  # pairs listed per trace
MAX_BYTES = 20_000_000  # embedded traces and pairs, serialized: the page stays under ~25 MB


RANK_SCHEMA = {"trace_id": pl.String, "rank": pl.Int64}


@dataclass
class Selection:
    ids: list[str]  # in selection order: filter quotas first, then the seeded sample
    total: int
    per_filter: dict[str, int]  # traces selected because of each filter
    quota: int
    seed: int
    shown: int = 0  # set by `payload`: traces embedded once the byte budget is applied
    cut_for_size: int = 0  # selected traces left out by the byte budget (the last in selection order)

    def statement(self) -> str:
        """What the page shows and why, in one sentence."""
        shown, total = self.shown, self.total
        head = f"showing {shown:,} of {total:,} traces"
        if shown == total:
            return f"{head} (all); overview statistics over all {total:,} traces"
        names = ", ".join(f"{k} {v:,}" for k, v in self.per_filter.items())
        budget = (
            f"; the last {self.cut_for_size:,} selected were left out to keep the page under the "
            f"{MAX_BYTES / 1e6:.0f} MB data budget"
            if self.cut_for_size
            else ""
        )
        return (
            f"{head}; policy: traces matching each filter first, at most {self.quota:,} per filter "
            f"(selected: {names}), then a uniform sample of the rest ordered by sha256('{self.seed}:' + trace_id)"
            f"{budget}; overview statistics over all {total:,} traces"
        )


def _order(ids: list[str], seed: int) -> list[str]:
    return sorted(ids, key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).digest())


def select(lf: pl.LazyFrame, max_traces: int, seed: int = 0) -> Selection:
    """Pick at most `max_traces` trace ids: per filter (in FILTERS order) up to a quota of
    max_traces / (2 * number of filters), so interesting traces take at most half the page,
    then the rest by seeded order."""
    flags = lf.select("trace_id", **filter_exprs()).collect()
    order = _order(flags["trace_id"].to_list(), seed)
    rank = pl.DataFrame({"trace_id": order, "rank": range(len(order))}, schema=RANK_SCHEMA)
    flags = flags.join(rank, on="trace_id").sort("rank")
    quota = max(1, math.floor(max_traces / (2 * len(FILTERS))))
    chosen: list[str] = []
    seen: set[str] = set()
    per_filter = {}
    for name in FILTERS:
        ids = [t for t in flags.filter(pl.col(name))["trace_id"].to_list() if t not in seen]
        take = ids[: min(quota, max_traces - len(chosen))]
        chosen += take
        seen.update(take)
        per_filter[name] = len(take)
    rest = [t for t in order if t not in seen]
    chosen += rest[: max(0, max_traces - len(chosen))]
    return Selection(chosen, len(order), per_filter, quota, seed)


def _num(x: float | None, digits: int = 4) -> float | None:
    """A JSON-safe rounded number (NaN and infinities become null: JSON.parse rejects them)."""
    return round(x, digits) if x is not None and math.isfinite(x) else None


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f" … [{len(text) - limit:,} more chars]"


def _steps(r: dict) -> tuple[list[list], int]:
    """Compact steps: [text, confidence, low_conf_tokens, symbolic, mc, mc_tally, judge, consensus]
    (verdict codes: `marks.step_marks`); text within the per-step and per-trace budgets.
    Returns (steps, chars cut)."""
    steps = r["steps"] or []
    marks = step_marks(r, steps[:MAX_STEPS])
    out, budget, cut = [], TRACE_CHARS, 0
    for s, m in zip(steps[:MAX_STEPS], marks):
        text = s["text"] or ""
        keep = min(len(text), STEP_CHARS, budget)
        budget -= keep
        cut += len(text) - keep
        lp = s["mean_logprob"]
        conf = _num(math.exp(lp), 6) if lp is not None else None  # 6 digits: the page bins up to 0.9999
        out.append([text[:keep] + ("…" if keep < len(text) else ""), conf, s["low_conf_tokens"], *m])
    cut += sum(len(s["text"] or "") for s in steps[MAX_STEPS:])
    return out, cut


def _frontier(r: dict) -> dict | None:
    if r.get("keep") is None:
        return None
    return {
        "keep": r["keep"],
        "drop_reason": r["drop_reason"],
        "pass_rate": _num(r["pass_rate"], 3),
        "ifd": _num(r["ifd"]),
    }


def _pair_rows(pairs: pl.LazyFrame | None, ids: list[str]) -> pl.DataFrame | None:
    if pairs is None:
        return None
    hit = pl.col("trace").is_in(ids) | pl.col("chosen_trace").is_in(ids) | pl.col("rejected_trace").is_in(ids)
    return pairs.filter(hit.fill_null(False)).sort("pair_id").collect()


def _pair(p: dict) -> dict:
    return {
        "id": p["pair_id"],
        "kind": p["kind"],
        "source": p["source"],
        "margin": _num(p["margin"]),
        **divergence(p["prefix"] or "", p["chosen"] or "", p["rejected"] or "", PAIR_CHARS),
        "cconf": _num(p["chosen_confidence"]),
        "rconf": _num(p["rejected_confidence"]),
        "trace": p["trace"],
        "ctrace": p["chosen_trace"],
        "rtrace": p["rejected_trace"],
        "step": p["step"],
    }


def _trace(r: dict) -> dict:
    steps, cut = _steps(r)
    lp = r["answer_confidence"]
    return {
        "id": r["trace_id"],
        "pid": r["problem_id"],
        "sample": r["sample_index"],
        "model": r["model"],
        "problem": _cut(r["problem"], FIELD_CHARS),
        "gold": r["gold_answer"],
        "final": r["final_answer"],
        "thinking_answer": r["thinking_answer"],
        "answer_text": _cut(r["answer_text"], FIELD_CHARS),
        "answer_conf": _num(math.exp(lp)) if lp is not None else None,
        "final_correct": r["final_correct"],
        "thinking_correct": r["thinking_correct"],
        "agrees": r["thinking_answer_agrees"],
        "consensus": r["consensus"],
        "first_error": r["first_error"],
        "labelers": labelers_run(r),
        "notes": labeler_notes(r["provenance"]),
        "self_corrected": r["self_corrected"],
        "provenance": _cut(r["provenance"], FIELD_CHARS),
        "tokens": r["thinking_tokens"],
        "finish": r["finish_reason"],
        "overthinking": _num(r["overthinking"], 3),
        "frontier": _frontier(r),
        "flags": [k for k in FILTERS if r[k]],
        "steps": steps,
        "n_steps": len(r["steps"] or []),
        "cut": cut,
    }


def _size(obj: object) -> int:
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))


def payload(lf: pl.LazyFrame, sel: Selection, pairs: pl.LazyFrame | None) -> dict:
    """The embedded traces (in problem, sample order) and the pairs they take part in (at most
    MAX_PAIRS per trace). Traces are taken in selection order while the serialized data stays
    within MAX_BYTES, so the page size is bounded whatever the texts' lengths; `sel.shown` and
    `sel.cut_for_size` record the outcome for the page's statement."""
    df = lf.filter(pl.col("trace_id").is_in(sel.ids)).with_columns(**filter_exprs())
    rows = {r["trace_id"]: r for r in df.collect().to_dicts()}
    by_trace: dict[str, list[dict]] = {}
    pair_df = _pair_rows(pairs, sel.ids)
    for p in pair_df.to_dicts() if pair_df is not None else []:
        for t in sorted({p["trace"], p["chosen_trace"], p["rejected_trace"]} - {None}):
            by_trace.setdefault(t, []).append(p)
    traces, pair_list, pair_index, used = [], [], {}, 0
    for tid in sel.ids:
        trace, mine = _trace(rows[tid]), by_trace.get(tid, [])
        new = [_pair(p) for p in mine[:MAX_PAIRS] if p["pair_id"] not in pair_index]
        size = _size(trace) + sum(_size(p) for p in new) + 64
        if used + size > MAX_BYTES:
            break
        used += size
        for p in new:
            pair_index[p["id"]] = len(pair_list)
            pair_list.append(p)
        traces.append({**trace, "pairs": [pair_index[p["pair_id"]] for p in mine[:MAX_PAIRS]], "n_pairs": len(mine)})
    sel.shown, sel.cut_for_size = len(traces), len(sel.ids) - len(traces)
    traces.sort(key=lambda t: (t["pid"], t["sample"], t["id"]))
    return {"traces": traces, "pairs": pair_list}
