"""The inspector's calibration and agreement figures: pure functions over counts, and the
column-wise queries that feed them.

Calibration is measured up to the consensus first error only: a step after it is labeled wrong
because an earlier step was (or right again after a repair), not on its own merit, so counting it
would score the model's confidence against a label that says nothing about that step. Bin edges
resolve confidence near 1 (0.9 / 0.99 / 0.999 / 0.9999), where a reasoning model's steps crowd.
Labeler agreement is Cohen's kappa on the per-trace verdict "has an error", on the traces both
labelers answered, with each labeler's coverage beside it: raw agreement hides both how rare the
disagreements are relative to chance and how often a labeler gave no usable verdict.
"""

from __future__ import annotations

import math

import polars as pl

from schemas.labels import LABELERS

EDGES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0)
Z = 1.959964  # 95% two-sided


def wilson(k: int, n: int, z: float = Z) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion k/n (sound at k = 0 or k = n, unlike the normal one)."""
    if n <= 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def ece(bins: list[dict]) -> float | None:
    """Expected calibration error: the step-weighted mean |accuracy - confidence| over bins."""
    total = sum(b["n"] for b in bins)
    return sum(b["n"] * abs(b["correct"] - b["conf"]) for b in bins) / total if total else None


def cohen_kappa(both_yes: int, a_only: int, b_only: int, both_no: int) -> float | None:
    """Cohen's kappa of two raters' binary verdicts from the 2x2 counts (None without data;
    1.0 when both agree perfectly on one class, where chance agreement is also 1)."""
    n = both_yes + a_only + b_only + both_no
    if not n:
        return None
    observed = (both_yes + both_no) / n
    pa, pb = (both_yes + a_only) / n, (both_yes + b_only) / n
    chance = pa * pb + (1 - pa) * (1 - pb)
    return 1.0 if chance >= 1 else (observed - chance) / (1 - chance)


def bin_index(conf: pl.Expr, edges: tuple[float, ...] = EDGES) -> pl.Expr:
    """The bin of each confidence: i where edges[i] <= c < edges[i+1] (1.0 in the last bin)."""
    out = pl.lit(0, pl.Int32)
    for i, edge in enumerate(edges[1:-1], start=1):
        out = pl.when(conf >= edge).then(pl.lit(i, pl.Int32)).otherwise(out)
    return out


def calibration(lf: pl.LazyFrame, edges: tuple[float, ...] = EDGES) -> dict:
    """Reliability over steps up to and including the consensus first error (all steps of a trace
    without one; none of a trace without consensus): per bin the steps, mean confidence, fraction
    correct with its Wilson interval; and the ECE. Confidence is exp(mean token logprob)."""
    fe = pl.col("first_error")
    flat = (
        lf.filter(fe.is_not_null())
        .select(fe, pl.col("steps"))
        .explode("steps")
        .select(fe, pl.col("steps").struct.field("index").alias("i"), pl.col("steps").struct.field("mean_logprob"))
        .filter(((fe < 0) | (pl.col("i") <= fe)) & pl.col("mean_logprob").is_not_null())
    )
    conf = pl.col("mean_logprob").exp().clip(0.0, 1.0)
    right = (fe < 0) | (pl.col("i") < fe)
    df = (
        flat.select(conf.alias("conf"), right.alias("right"))
        .with_columns(bin_index(pl.col("conf"), edges).alias("bin"))
        .group_by("bin")
        .agg(pl.col("conf").mean(), pl.col("right").sum().alias("k"), pl.len().alias("n"))
        .sort("bin")
        .collect()
    )
    bins = []
    for b, c, k, n in df.iter_rows():
        lo, hi = wilson(int(k), int(n))
        bins.append({"lo": edges[b], "hi": edges[b + 1], "conf": c, "correct": k / n, "k": int(k), "n": int(n)})
        bins[-1] |= {"ci": [lo, hi]}
    return {"bins": bins, "edges": list(edges), "ece": ece(bins), "steps": sum(b["n"] for b in bins)}


def labeler_notes(lf: pl.LazyFrame) -> dict[str, dict[str, int]]:
    """Per labeler, why its verdicts are unusable (provenance `note`), with counts."""
    out = {}
    for name in LABELERS:
        note = pl.col("provenance").str.json_path_match(f"$.{name}.note").alias("note")
        df = lf.select(note).drop_nulls().group_by("note").len().sort("len", descending=True).collect()
        out[name] = {str(k): int(n) for k, n in df.iter_rows()}
    return out


def labeler_agreement(lf: pl.LazyFrame) -> dict:
    """For the labelers that ran, each one's coverage (traces it gave a verdict on, why not on the
    rest) and, per pair, the 2x2 of "has an error" on the traces both answered, Cohen's kappa and
    the exact first-error agreement."""
    pairs = [(a, b) for i, a in enumerate(LABELERS) for b in LABELERS[i + 1 :]]
    exprs = [pl.len().alias("total")] + [pl.col(f"first_error_{a}").is_not_null().sum().alias(a) for a in LABELERS]
    for a, b in pairs:
        ca, cb = pl.col(f"first_error_{a}"), pl.col(f"first_error_{b}")
        both = ca.is_not_null() & cb.is_not_null()
        ea, eb = ca >= 0, cb >= 0
        exprs += [
            (both & ea & eb).sum().alias(f"{a}|{b}|yy"),
            (both & ea & ~eb).sum().alias(f"{a}|{b}|yn"),
            (both & ~ea & eb).sum().alias(f"{a}|{b}|ny"),
            (both & ~ea & ~eb).sum().alias(f"{a}|{b}|nn"),
            (both & (ca == cb)).sum().alias(f"{a}|{b}|exact"),
        ]
    row = {k: int(v or 0) for k, v in lf.select(exprs).collect().row(0, named=True).items()}
    total, notes = row["total"], labeler_notes(lf)
    ran = [a for a in LABELERS if row[a] or notes[a]]  # a registered labeler the recipe left off has neither
    coverage = [{"labeler": a, "answered": row[a], "total": total, "notes": notes[a]} for a in ran]
    out = []
    for a, b in pairs:
        if a not in ran or b not in ran:
            continue
        c = {k: row[f"{a}|{b}|{k}"] for k in ("yy", "yn", "ny", "nn", "exact")}
        n = c["yy"] + c["yn"] + c["ny"] + c["nn"]
        out.append(
            {
                "a": a,
                "b": b,
                "n": n,
                "coverage": n / total if total else None,
                **c,
                "kappa": cohen_kappa(c["yy"], c["yn"], c["ny"], c["nn"]),
                "exact_rate": c["exact"] / n if n else None,
            }
        )
    return {"coverage": coverage, "pairs": out, "total": total}


def thinking_final(lf: pl.LazyFrame) -> dict:
    """The 2x2 of thinking's concluded answer vs the final answer, each right or wrong (a missing
    answer counts as unknown), with the thinking-answer agreement beside it."""
    tc, fc, ag = pl.col("thinking_correct"), pl.col("final_correct"), pl.col("thinking_answer_agrees")
    cells = {f"{t}{f}": ((tc == (t == "r")) & (fc == (f == "r"))).sum().alias(f"{t}{f}") for t in "rw" for f in "rw"}
    row = lf.select(
        *cells.values(),
        (tc.is_null() | fc.is_null()).sum().alias("unknown"),
        (ag == True).sum().alias("agrees"),  # noqa: E712
        (ag == False).sum().alias("disagrees"),  # noqa: E712
        ag.is_null().sum().alias("agreement_unknown"),
    ).collect()
    out = {k: int(v or 0) for k, v in row.row(0, named=True).items()}
    decided = out["agrees"] + out["disagrees"]
    return out | {"rate": out["agrees"] / decided if decided else None}
