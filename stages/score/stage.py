"""The evaluation's `score` stage: labeled traces in, per-sample scores and the model's summary out.

First errors come from exact step truth when every trace's problem has it (the bundled
arithmetic; `problem_step_truth`), else from the label stage's consensus; the scores and the
summary say which. The stage writes `eval_scores.parquet` and `summary.json` into its folder.
"""

from __future__ import annotations

import json
import math

import pyarrow as pa

from schemas import EVAL_DEPTH, EVAL_SCORES, LABELED_TRACES
from stages.arithmetic.truth import first_error, problem_step_truth
from stages.base import StageConfig, StageContext
from stages.jsonable import finite
from stages.score.summary import summarize
from stages.shards import read_table, shard_paths, to_table, write_table

SCORES, SUMMARY = "eval_scores.parquet", "summary.json"


class ScoreConfig(StageConfig):
    ks: list[int] = [1, 4, 8]  # pass@k and maj@k (those no larger than the samples per problem)
    exact_truth: bool = True  # first errors from exact step truth where the problem set has it


def exact_first_errors(traces: list[dict]) -> dict[str, int] | None:
    """Trace id -> first wrong step by exact truth, if every trace's problem has exact truth."""
    out = {}
    for t in traces:
        truth = problem_step_truth(t["problem"], [s["text"] for s in t["steps"]])
        if truth is None:
            return None
        out[t["trace_id"]] = first_error(truth)
    return out


def _exp(x: float | None) -> float | None:
    return None if x is None else math.exp(x)


def score_row(t: dict, first: int | None, source: str, ratio: float | None = None) -> dict:
    confidences = [math.exp(s["mean_logprob"]) for s in t["steps"] if s["mean_logprob"] is not None]
    return {
        **{k: t[k] for k in ("trace_id", "problem_id", "model", "sample_index", "final_answer", "final_correct")},
        "thinking_correct": t["thinking_correct"],
        "thinking_answer_agrees": t["thinking_answer_agrees"],
        "first_error": first,
        "first_error_source": source,
        "steps": len(t["steps"]),
        "mean_step_confidence": sum(confidences) / len(confidences) if confidences else None,
        "answer_confidence": _exp(t["answer_confidence"]),
        "thinking_tokens": t["thinking_tokens"],
        "deep_thinking_ratio": ratio,
    }


def score(
    traces: list[dict], cfg: ScoreConfig, ratios: dict[str, float | None] | None = None
) -> tuple[list[dict], dict]:
    """(score rows, summary) of one model's labeled traces, with their deep-thinking `ratios`
    by trace id where the depth stage computed them."""
    truth = exact_first_errors(traces) if cfg.exact_truth else None
    source = "exact truth" if truth is not None else "consensus labels"
    ratios = ratios or {}
    rows = [
        score_row(t, truth[t["trace_id"]] if truth else t["first_error"], source, ratios.get(t["trace_id"]))
        for t in traces
    ]
    models = sorted({t["model"] for t in traces})
    return rows, {"models": models, **summarize(traces, tuple(cfg.ks), truth, ratios)}


def run_score(ctx: StageContext) -> dict:
    """The evaluation pipeline's `score` stage."""
    tables = [read_table(p, LABELED_TRACES) for p in shard_paths(ctx.inputs["label"])]
    traces = pa.concat_tables(tables).to_pylist() if tables else []
    depth = [read_table(p, EVAL_DEPTH) for p in shard_paths(ctx.inputs["depth"])] if "depth" in ctx.inputs else []
    ratios = {r["trace_id"]: r["deep_thinking_ratio"] for t in depth for r in t.to_pylist()}
    rows, summary = score(traces, ctx.config, ratios)
    write_table(to_table(rows, EVAL_SCORES), ctx.output / SCORES, EVAL_SCORES)
    (ctx.output / SUMMARY).write_text(json.dumps(finite(summary), indent=2, allow_nan=False))
    return {"status": "ran", "rows_in": len(traces), "rows_out": len(rows), "summary": str(ctx.output / SUMMARY)}
