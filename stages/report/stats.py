"""Overview statistics over every trace of a corpus, computed column-wise with polars.

The page embeds only a sample of traces, so everything the overview says (calibration, first
errors, length vs accuracy, labeler and thinking-answer agreement: `measures`) is computed here over all rows,
never from the embedded sample; the funnel and its drops by reason are run.json's, as the
dataset card's are (`stages.funnel`). Step confidence is exp(mean token logprob)
of the step's own tokens, as in the dataset card's figures, so the two agree.
"""

from __future__ import annotations

import polars as pl

from stages.funnel import funnel
from stages.report import measures
from stages.report.sources import Sources, scan_pairs

BINS = 10
MAX_POSITION = 50  # first-error histogram: positions from this on share one bar
CONFIDENT = 0.9  # a "confident" step or answer: exp(mean logprob) at least this

FILTERS: dict[str, str] = {
    "misaligned": "the thinking's concluded answer differs from the final answer",
    "confident_error": f"a wrong step (consensus first error) or a wrong final answer with confidence >= {CONFIDENT}",
    "disagreement": "the labelers disagree on the first error (consensus 'disagree')",
    "rationalized": "a correct final answer over a flawed step that is never repaired (self-corrections excluded)",
    "self_corrected": "a correct final answer over a flawed step that a later step repairs",
    "no_answer": "no final answer extracted, or the generation stopped at the length limit (truncated)",
    "judge_failed": "the judge gave no usable verdict (its reason, e.g. misquoted_step, is in provenance)",
    "frontier_dropped": "the frontier stage dropped the trace (student pass rate or IFD out of range)",
}


def _first_error_conf() -> pl.Expr:
    fe = pl.col("first_error")
    step = pl.col("steps").list.get(fe.clip(0), null_on_oob=True).struct.field("mean_logprob")
    return pl.when(fe >= 0).then(step.exp())


def filter_exprs(confident: float = CONFIDENT) -> dict[str, pl.Expr]:
    """One boolean column per filter (null counts as not matching)."""
    wrong_answer = (pl.col("final_correct") == False) & (pl.col("answer_confidence").exp() >= confident)  # noqa: E712
    return {
        "misaligned": (pl.col("thinking_answer_agrees") == False).fill_null(False),  # noqa: E712
        "confident_error": ((_first_error_conf() >= confident).fill_null(False) | wrong_answer.fill_null(False)),
        "disagreement": (pl.col("consensus") == "disagree").fill_null(False),
        "rationalized": pl.col("rationalized").fill_null(False),
        "self_corrected": pl.col("self_corrected").fill_null(False),
        "no_answer": (pl.col("final_answer").is_null() | (pl.col("finish_reason") == "length")).fill_null(False),
        "judge_failed": pl.col("provenance").str.json_path_match("$.judge.note").is_not_null().fill_null(False),
        "frontier_dropped": (pl.col("keep") == False).fill_null(False),  # noqa: E712  (`sources.with_frontier`)
    }


def _counts(df: pl.DataFrame, key: str) -> dict[str, int]:
    return {str(k): int(n) for k, n in df.iter_rows()} if key in df.columns else {}


def totals(lf: pl.LazyFrame) -> dict:
    f = filter_exprs()
    row = (
        lf.select(
            pl.len().alias("traces"),
            pl.col("problem_id").n_unique().alias("problems"),
            pl.col("steps").list.len().sum().alias("steps"),
            pl.col("final_correct").sum().alias("final_correct"),
            pl.col("thinking_correct").sum().alias("thinking_correct"),
            pl.col("rationalized").sum().alias("rationalized"),
            pl.col("self_corrected").sum().alias("self_corrected"),
            *[e.sum().alias(f"filter_{k}") for k, e in f.items()],
        )
        .collect()
        .row(0, named=True)
    )
    consensus = lf.group_by("consensus").len().sort("consensus").collect()
    finish = lf.group_by("finish_reason").len().sort("finish_reason").collect()
    out = {k: int(v or 0) for k, v in row.items() if not k.startswith("filter_")}
    out["filters"] = {k: int(row[f"filter_{k}"] or 0) for k in f}
    out["consensus"] = _counts(consensus, "consensus")
    out["finish_reason"] = _counts(finish, "finish_reason")
    return out


def first_errors(lf: pl.LazyFrame) -> dict:
    """Histogram of the consensus first-error position (-1: no error) and how many traces have none."""
    fe = pl.col("first_error")
    df = lf.select(fe.clip(upper_bound=MAX_POSITION).alias("pos")).group_by("pos").len().sort("pos").collect()
    hist = [{"pos": int(p), "n": int(n)} for p, n in df.iter_rows() if p is not None]
    none = sum(int(n) for p, n in df.iter_rows() if p is None)
    return {"hist": hist, "no_consensus": none, "cap": MAX_POSITION}


def length_accuracy(lf: pl.LazyFrame, bins: int = BINS) -> list[dict]:
    """Traces in equal-width bins of thinking tokens: fraction with a correct final answer."""
    x = pl.col("thinking_tokens").cast(pl.Float64)
    base = lf.select(x.alias("x"), pl.col("final_correct").cast(pl.Float64).alias("y")).drop_nulls()
    lo, hi = base.select(pl.col("x").min().alias("lo"), pl.col("x").max().alias("hi")).collect().row(0)
    if lo is None:
        return []
    width = (hi - lo) / bins if hi > lo else 1.0
    df = (
        base.with_columns(((pl.col("x") - lo) / width).floor().cast(pl.Int32).clip(0, bins - 1).alias("bin"))
        .group_by("bin")
        .agg(pl.col("y").mean().alias("accuracy"), pl.len().alias("n"))
        .sort("bin")
        .collect()
    )
    return [{"lo": lo + b * width, "hi": lo + (b + 1) * width, "accuracy": a, "n": n} for b, a, n in df.iter_rows()]


def _run_stages(run: dict) -> list[dict]:
    """run.json's per-stage status, time, chunks and tokens (rows and drops are the funnel's)."""
    spent = run_funnel(run).get("tokens", {})
    out = []
    for name, s in (run.get("stages") or {}).items():
        keep = ("status", "seconds", "compute_seconds", "chunks", "shards")
        out.append({"stage": name, **{k: s[k] for k in keep if k in s}, "tokens": spent.get(name, {}).get("total")})
    return out


def run_funnel(run: dict) -> dict:
    """The run's funnel as run.json has it (`stages.funnel`, the card's too), or computed the same
    way from its stages (a run.json written before it had one); empty without run.json."""
    return run.get("funnel") or (funnel(run["stages"]) if run.get("stages") else {})


def pair_counts(src: Sources) -> dict[str, int]:
    pairs = scan_pairs(src)
    if pairs is None:
        return {}
    return _counts(pairs.group_by("kind").len().sort("kind").collect(), "kind")


def overview(src: Sources, lf: pl.LazyFrame) -> dict:
    """Everything the overview tab shows, over all traces of `src`."""
    return {
        "totals": totals(lf),
        "rows": src.rows,
        "stages": _run_stages(src.run),
        "funnel": run_funnel(src.run),
        "pairs": pair_counts(src),
        "calibration": measures.calibration(lf),
        "first_error": first_errors(lf),
        "length_accuracy": length_accuracy(lf),
        "labelers": measures.labeler_agreement(lf),
        "thinking": measures.thinking_final(lf),
    }
