"""A run's funnel: what went in, what each stage kept and why the rest went, and what it cost.

One pure function of run.json's per-stage figures (`funnel`), so run.json, the dataset card and
the inspector say the same thing. Traces: problems -> traces -> labeled -> kept (by the frontier)
-> each exported config; pairs: candidates -> deduplicated -> capped (per problem and kind) ->
exported (the `dpo` config). Each step lists the drops that led to it, each drop once, in the
unit it counts; `tokens` is every stage's token figures. The stages' figures are their totals
over every run that did the work (`stages.accounting`), so a resumed or skipped run reports the
whole of it.
"""

from __future__ import annotations

# Reasons a stage drops whole traces although the stage's input rows are problems: a pruned
# generation strategy (`stages.prune`) rejects samples, not problems.
TRACE_REASONS = ("pruned:",)
# Token figures that are part of another of the same stage: not added to its total.
TOKEN_SUBSETS = ("tokens_pruned",)


def _int(value) -> int:
    return int(value or 0)


def _drops(stats: dict, unit: str, prefixes: tuple[str, ...] = ("rejected_", "dropped_")) -> list[dict]:
    out = []
    for key, n in sorted(stats.items()):
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None or not isinstance(n, int | float):
            continue
        reason = key.removeprefix(prefix)
        out.append(_drop(reason, n, "traces" if reason.startswith(TRACE_REASONS) else unit))
    return out


def _drop(reason: str, n, unit: str) -> dict:
    return {"reason": reason, "n": _int(n), "unit": unit}


def _step(step: str, stage: str, n, unit: str, drops: list[dict] | None = None) -> dict:
    return {"step": step, "stage": stage, "n": _int(n), "unit": unit, "drops": drops or []}


def trace_steps(stages: dict[str, dict]) -> list[dict]:
    """problems (or imported rows) -> traces -> labeled -> kept, from the stages that ran."""
    out = []
    if "problems" in stages:
        s = stages["problems"]
        out.append(_step("problems", "problems", s.get("rows_out"), "problems", _drops(s, "problems", ("rejected_",))))
    if "import" in stages:
        s = stages["import"]
        imported = s.get("imported") or {}
        out.append(_step("source rows", "import", imported.get("rows"), "rows"))
        out.append(_step("traces", "import", imported.get("traces"), "traces", _drops(s, "rows", ("rejected_",))))
    if "generate" in stages:
        s = stages["generate"]
        out.append(_step("traces", "generate", s.get("rows_out"), "traces", _drops(s, "problems", ("rejected_",))))
    if "label" in stages:
        s = stages["label"]
        out.append(_step("labeled", "label", s.get("rows_out"), "traces", _drops(s, "traces", ("rejected_",))))
    frontier = stages.get("frontier") or {}
    if "kept" in frontier or any(k.startswith("dropped_") for k in frontier):
        out.append(_step("kept", "frontier", frontier.get("kept"), "traces", _drops(frontier, "traces", ("dropped_",))))
    return out


def pair_steps(stages: dict[str, dict]) -> list[dict]:
    """candidates -> deduplicated -> capped -> exported, when the pairs stage ran."""
    s = stages.get("pairs")
    if not s or "pairs_candidates" not in s:
        return []
    candidates, dup, cap = (
        _int(s.get(k)) for k in ("pairs_candidates", "dropped_duplicate", "dropped_per_problem_cap")
    )
    out = [
        _step("candidates", "pairs", candidates, "pairs"),
        _step("deduplicated", "pairs", candidates - dup, "pairs", [_drop("duplicate", dup, "pairs")]),
        _step("capped", "pairs", s.get("rows_out"), "pairs", [_drop("per_problem_cap", cap, "pairs")]),
    ]
    export = stages.get("export") or {}
    if "configs" in export and "dpo" in export["configs"]:
        outside = _int(export.get("dropped_pairs_outside_frontier"))
        drop = [_drop("outside_frontier", outside, "pairs")]
        out.append(_step("exported (dpo)", "export", export["configs"]["dpo"], "pairs", drop))
    return out


def tokens(stages: dict[str, dict]) -> dict[str, dict[str, int]]:
    """Per stage, its token figures and their `total` (sub-figures such as pruned tokens, which
    are part of the generated ones, are listed but not added)."""
    out = {}
    for name, s in stages.items():
        figures = {k: _int(v) for k, v in sorted(s.items()) if "tokens" in k and isinstance(v, int | float)}
        if figures:
            out[name] = figures | {"total": sum(v for k, v in figures.items() if k not in TOKEN_SUBSETS)}
    return out


def funnel(stages: dict[str, dict]) -> dict:
    """The run's funnel from run.json's `stages` (see the module docstring)."""
    traces, pairs = trace_steps(stages), pair_steps(stages)
    configs = {k: _int(v) for k, v in ((stages.get("export") or {}).get("configs") or {}).items()}
    drops = [
        {"stage": step["stage"], **d}
        for step in traces + pairs
        for d in step["drops"]
        if d["n"]  # a reason with nothing dropped is no drop
    ]
    spent = tokens(stages)
    return {
        "traces": traces,
        "configs": configs,
        "pairs": pairs,
        "drops": drops,
        "tokens": spent,
        "tokens_total": sum(t["total"] for t in spent.values()),
    }


def _dropped(step: dict) -> str:
    return ", ".join(f"{d['reason']}: {d['n']:,} {d['unit']}" for d in step["drops"] if d["n"]) or "-"


def funnel_rows(f: dict) -> list[tuple[str, str, str, str]]:
    """(step, stage, count, dropped on the way) rows of the trace funnel, the configs and the pair
    funnel, for a table."""
    rows = [(s["step"], s["stage"], f"{s['n']:,} {s['unit']}", _dropped(s)) for s in f.get("traces", [])]
    rows += [(f"config `{name}`", "export", f"{n:,} rows", "-") for name, n in f.get("configs", {}).items()]
    rows += [(f"pairs: {s['step']}", s["stage"], f"{s['n']:,} {s['unit']}", _dropped(s)) for s in f.get("pairs", [])]
    return rows


def _table(head: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def markdown(f: dict) -> str:
    """The funnel, its drops by reason and its tokens as Markdown tables (the card, the flow's artifact)."""
    parts = [_table(("step", "stage", "count", "dropped on the way (reason: n)"), funnel_rows(f))]
    parts.append("### Dropped, by reason")
    drops = [(d["stage"], d["reason"], f"{d['n']:,}", d["unit"]) for d in f.get("drops", [])]
    parts.append(_table(("stage", "reason", "dropped", "unit"), drops) if drops else "Nothing was dropped.")
    parts.append("### Tokens, by stage")
    spent = [(name, f"{t['total']:,}", ", ".join(f"{k}: {v:,}" for k, v in t.items() if k != "total"))
             for name, t in f.get("tokens", {}).items()]  # fmt: skip
    parts.append(_table(("stage", "tokens", "of which"), spent) if spent else "No token figures recorded.")
    return "\n\n".join(parts)
