"""A synthetic run folder in the real schemas, fast enough for 100k traces in a unit test.

The inspector's tests need a run folder with every case the page must show (misaligned traces,
confident errors, labeler disagreements, rationalized answers, pairs of every kind, frontier
drops, rejects, the funnel) without starting vLLM. Columns are generated with numpy and assembled as Arrow
arrays (no per-row dicts), then validated against `schemas` exactly as a stage writes them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from flows.pipeline import PIPELINE
from schemas import FRONTIER, LABELED_TRACES, PAIRS, PROBLEMS, REJECTS
from schemas.labels import LABELED_STEP
from stages.accounting import stage_totals, write_chunk_stats
from stages.funnel import funnel
from stages.shards import rejects_dir, write_table

TEMPLATES = (
    "{a} + {b} = {c}, so the running total is {c}.",
    "Now take {c} and subtract {b}: {c} - {b} = {a}. Let me double-check that carefully before moving on.",
    "Wait, let me check: {a} + {b} should be {c}.",
    "Multiply: {a} * 2 = {d}, then add {b} to get {e}, which is what the next step needs.",
)


def _list(offsets: np.ndarray, values: pa.Array) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def _empty_lists(n: int, kind: pa.DataType) -> pa.ListArray:
    return _list(np.zeros(n + 1, np.int32), pa.array([], kind))


def _labeler(rng: np.random.Generator, truth: np.ndarray, n_steps: np.ndarray, p_right: float, p_off: float):
    """A labeler's first error: the truth with probability p_right, else a random position; null when off."""
    other = np.where(rng.random(len(truth)) < 0.5, -1, rng.integers(0, n_steps))
    out = np.where(rng.random(len(truth)) < p_right, truth, other).astype(float)
    out[rng.random(len(truth)) < p_off] = np.nan
    return out


def _int_or_null(x: np.ndarray) -> pa.Array:
    return pa.array(np.nan_to_num(x, nan=0).astype(np.int32), mask=np.isnan(x))


def _branches(n: int, offsets: np.ndarray, values: np.ndarray, every: int = 10, rollouts: int = 4) -> list:
    """Every `every`-th trace (at most 5,000) records its MC rollouts: per step with an MC value,
    `rollouts` of them, round(value * rollouts) reaching the answer (the others record none)."""
    out: list[list] = [[] for _ in range(n)]
    for t in range(0, min(n, every * 5000), every):
        for i, v in enumerate(values[offsets[t] : offsets[t + 1]]):
            if not np.isnan(v):
                hit = round(float(v) * rollouts)
                out[t] += [{"after": i, "text": "x", "reached": j < hit, "confidence": -0.1} for j in range(rollouts)]
    return out


def labeled_table(n: int, seed: int = 0, per_problem: int = 8, step_repeat: int = 1) -> pa.Table:
    """`n` labeled traces with consistent labels, flags and step structs (each step's text
    repeated `step_repeat` times, for size tests)."""
    rng = np.random.default_rng(seed)
    problem = np.arange(n) // per_problem
    pid = np.char.add("p", np.char.zfill(problem.astype(str), 7))
    tid = np.char.add("t", np.char.zfill(np.arange(n).astype(str), 9))
    n_steps = rng.integers(2, 9, n)
    truth = np.where(rng.random(n) < 0.6, -1, rng.integers(0, n_steps))
    sym, mc, judge = (_labeler(rng, truth, n_steps, p, off) for p, off in ((0.9, 0.3), (0.85, 0.02), (0.75, 0.02)))
    answered = np.stack([sym, mc, judge])
    count = (~np.isnan(answered)).sum(0)
    hi, lo = np.max(np.nan_to_num(answered, nan=-9), 0), np.min(np.nan_to_num(answered, nan=99), 0)
    consensus = np.where(count < 2, "insufficient", np.where(hi == lo, "agree", "disagree"))
    first = np.where(consensus == "agree", hi, np.nan)
    final_correct = np.where(truth >= 0, rng.random(n) < 0.25, rng.random(n) < 0.9)
    agrees = rng.random(n) < 0.93
    gold = rng.integers(0, 100, n)
    final = np.where(final_correct, gold, gold + 1)
    thinking_ans = np.where(agrees, final, final + 2)
    # steps, flattened
    offsets = np.concatenate([[0], np.cumsum(n_steps)])
    owner = np.repeat(np.arange(n), n_steps)
    idx = np.arange(offsets[-1]) - offsets[owner]
    a, b = rng.integers(1, 50, len(idx)), rng.integers(1, 50, len(idx))
    tpl = rng.integers(0, len(TEMPLATES), len(idx))
    text = [
        " ".join([TEMPLATES[t]] * step_repeat).format(a=x, b=y, c=x + y, d=2 * x, e=2 * x + y)
        for t, x, y in zip(tpl, a, b)
    ]
    lengths = np.array([len(s) for s in text])
    conf = np.clip(rng.beta(8, 1, len(idx)), 0.3, 0.9999)
    logprob = np.log(conf)

    def before(fe: np.ndarray) -> np.ndarray:
        f = fe[owner]
        return np.where(np.isnan(f), np.nan, np.where((f < 0) | (idx < f), 1.0, 0.0))

    mc_l, judge_l = before(mc), before(judge)
    mc_values = np.where(np.isnan(mc_l), np.nan, mc_l * 0.8 + 0.1)
    cons = first[owner]
    label = np.where(np.isnan(cons), np.nan, np.where((cons < 0) | (idx < cons), 1.0, 0.0))
    sym_o = sym[owner]
    symbolic = np.where(np.isnan(sym_o), "unknown", np.where(idx == sym_o, "wrong", "correct"))
    starts = (
        np.concatenate([[0], np.cumsum(lengths + 2)])[:-1]
        - np.concatenate([[0], np.cumsum(lengths + 2)])[offsets[owner]]
    )
    boolean = lambda v: pa.array(v == 1.0, mask=np.isnan(v))  # noqa: E731
    steps = pa.StructArray.from_arrays(
        [
            pa.array(idx, pa.int32()),
            pa.array(text),
            pa.array(starts, pa.int32()),
            pa.array(starts + lengths, pa.int32()),
            pa.array(idx * 12, pa.int32()),
            pa.array(idx * 12 + 12, pa.int32()),
            pa.array(logprob, pa.float32()),
            pa.array(logprob * 3, pa.float32()),
            pa.array(rng.random(len(idx)), pa.float32()),
            pa.array((conf < 0.6).astype(np.int32)),
            pa.array(symbolic),
            pa.array(mc_values, pa.float32()),
            boolean(mc_l),
            boolean(judge_l),
            pa.nulls(len(idx), pa.float32()),  # the PRM labeler: off, as in the recipes
            pa.nulls(len(idx), pa.bool_()),
            boolean(label),
            pa.array(rng.normal(0, 1, len(idx)), pa.float32()),
        ],
        names=list(LABELED_STEP),
    )
    thinking = ["\n\n".join(text[offsets[i] : offsets[i + 1]]) for i in range(n)]
    answer = [f"\n\nThe answer is \\boxed{{{v}}}." for v in final]
    ok = json.dumps({"symbolic": {"first_error": 0}, "mc": {"first_error": 0}, "judge": {"first_error": 0}})
    failed = json.dumps({"symbolic": {"first_error": 0}, "mc": {"first_error": 0}, "judge": {"note": "misquoted_step"}})
    columns = {
        "trace_id": tid,
        "problem_id": pid,
        "sample_index": pa.array(np.arange(n) % per_problem, pa.int32()),
        "model": ["tiny:teacher"] * n,
        "sampling": ['{"temperature": 1.0}'] * n,
        "problem": np.char.add("What is the value of expression number ", problem.astype(str)),
        "gold_answer": gold.astype(str),
        "prompt": ["<prompt>"] * n,
        "completion": [t + s for t, s in zip(thinking, answer)],
        "thinking": thinking,
        "thinking_start": pa.array(np.zeros(n), pa.int32()),
        "answer_text": answer,
        "finish_reason": np.where(rng.random(n) < 0.97, "stop", "length"),
        "thinking_tokens": pa.array(n_steps * 12 + rng.integers(0, 40, n), pa.int32()),
        "answer_tokens": pa.array(np.full(n, 8), pa.int32()),
        "final_answer": final.astype(str),
        "thinking_answer": thinking_ans.astype(str),
        "answer_confidence": pa.array(np.log(np.clip(rng.beta(20, 1, n), 1e-6, 1)), pa.float32()),
        "steps": _list(offsets.astype(np.int32), steps),
        "token_logprobs": _empty_lists(n, pa.float32()),
        "token_entropies": _empty_lists(n, pa.float32()),
        "token_offsets": _empty_lists(n, pa.int32()),
        "final_correct": final_correct,
        "thinking_correct": thinking_ans == gold,
        "thinking_answer_agrees": pa.array(agrees),
        "first_error_symbolic": _int_or_null(sym),
        "first_error_mc": _int_or_null(mc),
        "first_error_judge": _int_or_null(judge),
        "first_error_prm": pa.nulls(n, pa.int32()),
        "first_error": _int_or_null(first),
        "consensus": consensus,
        "provenance": np.where(np.isnan(judge), failed, ok),  # a judge that failed says why
        # half the correct answers over a flaw repair it (self-corrected), half never do
        "self_corrected": final_correct & (np.nan_to_num(first, nan=-1) >= 0) & (np.arange(n) % 2 == 0),
        "rationalized": final_correct & (np.nan_to_num(first, nan=-1) >= 0) & (np.arange(n) % 2 == 1),
        "overthinking": pa.array(rng.random(n) * 2, pa.float32()),
        "label_tokens": pa.array(rng.integers(0, 500, n), pa.int32()),
        "branches": _branches(n, offsets, mc_values),
    }
    return pa.table({k: v if isinstance(v, pa.Array) else pa.array(v) for k, v in columns.items()})


def pairs_table(traces: pa.Table) -> pa.Table:
    """Trace pairs between consecutive samples, step pairs from every fourth trace, fidelity pairs
    for misaligned traces: provenance names the traces as the real pair builders do."""
    tid = traces["trace_id"].to_numpy(zero_copy_only=False)
    pid = traces["problem_id"].to_numpy(zero_copy_only=False)
    n = len(tid)
    rows: dict[str, list] = {k: [] for k in ("kind", "source", "problem_id", "provenance", "chosen", "rejected")}

    def add(kind: str, source: str, i: np.ndarray, prov: list[str]) -> None:
        rows["kind"] += [kind] * len(i)
        rows["source"] += [source] * len(i)
        rows["problem_id"] += list(pid[i])
        rows["provenance"] += prov
        # a shared opening, a long middle and the answer at the end: the page must keep the answer
        start, middle = "Both sides begin alike here. ", "Then a long stretch of reasoning. " * 40
        rows["chosen"] += [f"{start}chosen side of {kind} pair. {middle}The answer is \\boxed{{1}}."] * len(i)
        rows["rejected"] += [f"{start}rejected side of {kind} pair. {middle}The answer is \\boxed{{2}}."] * len(i)

    i = np.arange(0, n - 1, 2)
    add("trace", "trace_ranking", i, [f'{{"chosen_trace": "{tid[a]}", "rejected_trace": "{tid[a + 1]}"}}' for a in i])
    i = np.arange(0, n, 4)
    add("step", "next_step_sampling", i, [f'{{"step": 1, "trace": "{tid[a]}"}}' for a in i])
    misaligned = np.flatnonzero(~traces["thinking_answer_agrees"].to_numpy(zero_copy_only=False))
    i = misaligned[misaligned > 0]
    prov = [
        f'{{"chosen_trace": "{tid[a - 1]}", "rejected_trace": "{tid[a]}", "rejected_reason": "misaligned"}}' for a in i
    ]
    add("fidelity", "fidelity", i, prov)
    m = len(rows["kind"])
    return pa.table(
        {
            "pair_id": [f"pair{k:09d}" for k in range(m)],
            **{k: rows[k] for k in ("kind", "problem_id")},
            "problem": ["What is it?"] * m,
            "prefix": ["<think>\nA step both sides share.\n\n" if k == "step" else "" for k in rows["kind"]],
            "chosen": rows["chosen"],
            "rejected": rows["rejected"],
            "chosen_confidence": pa.array(np.full(m, -0.1), pa.float32()),
            "rejected_confidence": pa.array(np.full(m, -0.4), pa.float32()),
            "margin": pa.array(np.ones(m), pa.float32()),
            "source": rows["source"],
            "provenance": rows["provenance"],
        }
    )


def frontier_table(traces: pa.Table, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed + 1)
    n = traces.num_rows
    reason = np.where(
        rng.random(n) < 0.85, "", rng.choice(["pass_rate_too_low", "pass_rate_too_high", "ifd_too_high"], n)
    )
    f32 = lambda v: pa.array(v, pa.float32())  # noqa: E731
    return pa.table(
        {
            "trace_id": traces["trace_id"],
            "problem_id": traces["problem_id"],
            "pass_rate": f32(rng.random(n)),
            "nll": f32(rng.random(n) * 3),
            "nll_unconditioned": f32(rng.random(n) * 4),
            "ifd": f32(rng.random(n)),
            "keep": reason == "",
            "drop_reason": reason,
        }
    )


def rejects_table(stage: str, reasons: list[str]) -> pa.Table:
    k = len(reasons)
    return pa.table(
        {
            "row_id": [f"r{i}" for i in range(k)],
            "stage": [stage] * k,
            "reason": reasons,
            "detail": [""] * k,
            "payload": ["{}"] * k,
        }
    )


def write_synthetic_run(
    root: Path, n_traces: int = 400, seed: int = 0, per_problem: int = 8, step_repeat: int = 1
) -> Path:
    """A run folder as `curate` lays it out (the pipeline spec's stage folders, their rejects, run.json)."""
    root = Path(root)
    traces = labeled_table(n_traces, seed, per_problem, step_repeat)
    pairs, frontier = pairs_table(traces), frontier_table(traces, seed)
    n_problems = (n_traces + per_problem - 1) // per_problem
    problems = pa.table(
        {
            "problem_id": traces["problem_id"].take(np.arange(0, n_traces, per_problem)),
            "source": ["arithmetic"] * n_problems,
            "problem": ["What is it?"] * n_problems,
            "answer": ["0"] * n_problems,
            "split": ["demo"] * n_problems,
            "meta": ["{}"] * n_problems,
        }
    )
    folder = {name: PIPELINE.path(name, root) for name in ("problems", "generate", "label", "pairs", "frontier")}
    write_table(problems, folder["problems"] / "problems-00000.parquet", PROBLEMS)
    half = n_traces // 2  # two shards, as a multi-chunk run writes
    for i, part in enumerate((traces.slice(0, half), traces.slice(half))):
        write_table(part, folder["label"] / f"problems-00000-{i:05d}.parquet", LABELED_TRACES)
    write_table(pairs, folder["pairs"] / "problems-00000-00000.parquet", PAIRS)
    write_table(frontier, folder["frontier"] / "problems-00000-00000.parquet", FRONTIER)
    gen_rejects = rejects_table("generate", ["missing_answer"] * 3 + ["prompt_too_long"])
    write_table(gen_rejects, rejects_dir(folder["generate"]) / "problems-00000.parquet", REJECTS)
    label_rejects = rejects_table("label", ["judge_unparseable"] * 2)
    write_table(label_rejects, rejects_dir(folder["label"]) / "p-00000.parquet", REJECTS)
    # each stage's figures beside its shards, as `ShardStage` writes them, and run.json summed from them
    decisions = Counter(frontier["drop_reason"].to_pylist())
    kept = decisions.pop("")
    for i in range(2):
        refused = {"rejected_judge_unparseable": 2} if i == 0 else {}
        figures = {"rows_in": half + len(refused) * 2, "rows_out": half} | refused
        write_chunk_stats(folder["label"] / f"problems-00000-{i:05d}.parquet", figures, 1.0)
    frontier_figures = {"rows_in": n_traces, "rows_out": n_traces, "kept": kept, "tokens_scored": 7 * n_traces}
    write_chunk_stats(folder["frontier"] / "problems-00000-00000.parquet", frontier_figures | {
        f"dropped_{reason}": n for reason, n in decisions.items()}, 1.0)  # fmt: skip
    pairs_figures = {"pairs_candidates": pairs.num_rows + 30, "dropped_duplicate": 10, "dropped_per_problem_cap": 20}
    pairs_figures |= {"rows_in": n_traces, "rows_out": pairs.num_rows, "next_step_tokens": 5 * n_traces}
    write_chunk_stats(folder["pairs"] / "problems-00000-00000.parquet", pairs_figures, 1.0)
    stages = {
        "problems": {"status": "ran", "shards": 1, "rows_out": n_problems + 4, "rejected_duplicate_problem": 1},
        "generate": {"status": "ran", "rows_in": n_problems + 4, "rows_out": n_traces, "seconds": 1.0}
        | {"rejected_missing_answer": 3, "rejected_prompt_too_long": 1, "tokens_generated": 50 * n_traces},
        **{
            name: {"status": "ran", "seconds": 1.0, **stage_totals(folder[name])}
            for name in ("label", "pairs", "frontier")
        },
    }
    dpo = pairs.num_rows - 6
    stages["export"] = {"status": "ran", "configs": {"sft": kept // 2, "prm": n_traces, "dpo": dpo, "traces": n_traces}}
    stages["export"] |= {"pairs_in": pairs.num_rows, "dropped_pairs_outside_frontier": 6}
    run = {"recipe": "synthetic", "out": str(root), "stages": stages, "funnel": funnel(stages)}
    (root / "run.json").write_text(json.dumps(run, indent=2))
    return root
