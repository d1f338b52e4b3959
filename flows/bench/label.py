"""`thoughtmill bench label`: each labeler and the consensus against exact arithmetic truth.

On tiny-reasoner traces every step's truth is computable exactly (`step_truth`), so this reports
for each labeler the ProcessBench metric (accuracy on erroneous traces, on correct traces, and
their harmonic mean F1 for the first-error index), the tokens it generated per labeled trace,
and the calibration of the model's step confidence against true step correctness (AUROC, ECE).
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from schemas import PROBLEMS, TRACES, arrow_schema
from schemas.labels import KEPT
from stages.arithmetic.truth import first_error, problem_step_truth
from stages.engine import EngineConfig, SamplingConfig
from stages.engine.pool import POOL
from stages.engine.step_layout import step_layout
from stages.generate.stage import Generate, GenerateConfig
from stages.label.consensus import ConsensusConfig, consensus, settled
from stages.label.labelers.judge import JudgeConfig, JudgeLabeler
from stages.label.labelers.mc import MonteCarloLabeler
from stages.label.labelers.prm import PRMLabeler, PRMLabelerConfig
from stages.label.labelers.symbolic import SymbolicLabeler
from stages.label.resolve import resolve_disputes
from stages.problems.stage import ProblemSourceConfig, load_problems
from stages.rollouts import RolloutConfig
from stages.score.metrics import auroc, expected_calibration_error
from stages.shards import read_table, shard_paths, write_table


def processbench(pred: list[int | None], truth: list[int]) -> dict:
    err = [p == t for p, t in zip(pred, truth) if t >= 0]
    cor = [p == -1 for p, t in zip(pred, truth) if t < 0]
    a, b = (sum(x) / len(x) if x else float("nan") for x in (err, cor))
    return {
        "erroneous_acc": a,
        "correct_acc": b,
        "f1": 2 * a * b / (a + b) if a + b else 0.0,
        "n_erroneous": len(err),
        "n_correct": len(cor),
    }


def kept_figures(cons: list, truth: list[int], tokens_per_trace: float) -> dict:
    """ProcessBench on the traces a consensus keeps, the kept share of all and of the erroneous."""
    kept = [i for i, c in enumerate(cons) if c.status in KEPT]
    return {
        **processbench([cons[i].first_error for i in kept], [truth[i] for i in kept]),
        "kept": len(kept) / len(truth),
        "erroneous_kept": sum(truth[i] >= 0 for i in kept) / max(sum(t >= 0 for t in truth), 1),
        "tokens_per_trace": tokens_per_trace,
    }


def sample_traces(engine, problems: int, n: int, tmp: Path, problem_seed: int = 7, seed: int = 11) -> list[dict]:
    rows = list(load_problems(ProblemSourceConfig(split="eval", limit=problems, seed=problem_seed)))
    write_table(pa.Table.from_pylist(rows, schema=arrow_schema(PROBLEMS)), tmp / "p" / "p.parquet", PROBLEMS)
    cfg = GenerateConfig(sampling=SamplingConfig(n=n, max_tokens=300, seed=seed), chunk_size=problems)
    Generate(tmp / "p", tmp / "t", cfg, engines={"generator": engine}).run()
    return pa.concat_tables([read_table(p, TRACES) for p in shard_paths(tmp / "t")]).to_pylist()


PRM = EngineConfig(model="tiny:prm", backend="transformers", runner="pooling")
PRM_SEPARATOR = PRMLabelerConfig().step_separator


def bench_label(
    problems: int = 64, n: int = 4, k: int = 4, model: str = "tiny:teacher", prm: EngineConfig = PRM
) -> dict:
    engine = POOL.open(EngineConfig(model=model, enforce_eager=True))
    prm_engine = POOL.open(prm)
    with tempfile.TemporaryDirectory() as tmp:
        traces = [t for t in sample_traces(engine, problems, n, Path(tmp)) if t["steps"]]
    truth_steps = [problem_step_truth(t["problem"], [s["text"] for s in t["steps"]]) for t in traces]
    truth = [first_error(ts) for ts in truth_steps]
    rollout = dict(k=k, max_tokens=300, seed=5)
    labelers = {
        "symbolic": SymbolicLabeler(),
        "mc_per_step": MonteCarloLabeler(engine, RolloutConfig(strategy="per_step", **rollout)),
        "mc_binary_search": MonteCarloLabeler(engine, RolloutConfig(strategy="binary_search", **rollout)),
        "judge": JudgeLabeler(engine, JudgeConfig(template="compact", max_tokens=400)),
        "prm": PRMLabeler(prm_engine, PRMLabelerConfig()),
    }
    results, verdicts = {}, {}
    for name, labeler in labelers.items():
        got = labeler.label(traces)
        verdicts[name] = got
        results[name] = {
            **processbench([g.first_error for g in got], truth),
            "tokens_per_trace": statistics.mean(g.tokens for g in got),
            "answered": sum(g.first_error is not None for g in got) / len(got),
            "unusable": dict(Counter(g.note for g in got if g.first_error is None)),
        }
    # the PRM reads each trace once (prefill): its cost in tokens read, beside the others' generated
    prm_read = statistics.mean(
        len(step_layout(prm_engine.tokenizer, t["problem"], [s["text"] for s in t["steps"]], PRM_SEPARATOR)[0])
        for t in traces
    )
    results["prm"]["read_per_trace"] = prm_read
    arms = [(mc, ("judge",)) for mc in ("mc_per_step", "mc_binary_search")]
    arms += [("mc_binary_search", ("prm",)), ("mc_binary_search", ("judge", "prm")), (None, ("judge", "prm"))]
    for mc, others in arms:
        sources = ([mc] if mc else []) + list(others)
        policy = ConsensusConfig(sources=["mc", *others])
        cons = [
            consensus({("mc" if s == mc else s): verdicts[s][i] for s in sources}, len(t["steps"]), policy)
            for i, t in enumerate(traces)
        ]
        results[f"consensus({'+'.join(sources)})"] = kept_figures(
            cons, truth, sum(results[s]["tokens_per_trace"] for s in sources)
        )
    # the recipes' policy: symbolic + MC + judge, disagreements resolved by evidence (more rollouts)
    policy = ConsensusConfig(sources=["mc", "judge", "symbolic"], resolve="evidence")
    votes = [
        {"mc": verdicts["mc_binary_search"][i], "judge": verdicts["judge"][i], "symbolic": verdicts["symbolic"][i]}
        for i in range(len(traces))
    ]
    cons = [consensus(v, len(t["steps"]), policy) for v, t in zip(votes, traces)]
    disputed = [i for i, c in enumerate(cons) if c.status == "disagree"]
    rechecks = RolloutConfig(strategy="binary_search", **rollout)
    resolved = resolve_disputes(
        engine, rechecks, policy.resolve_k, [traces[i] for i in disputed], [votes[i] for i in disputed]
    )
    for i, (first, _) in zip(disputed, resolved):
        if first is not None:
            cons[i] = settled("resolved", first, len(traces[i]["steps"]), policy)
    spent = sum(r[1] for r in resolved) / len(traces) + sum(
        results[s]["tokens_per_trace"] for s in ("mc_binary_search", "judge")
    )
    results["recipe consensus (resolve: evidence)"] = kept_figures(cons, truth, spent)
    conf = np.array([math.exp(s["mean_logprob"]) for t in traces for s in t["steps"]])
    correct = np.array([ok for ts in truth_steps for ok in ts], dtype=bool)
    POOL.close()
    return {
        "traces": len(traces),
        "erroneous": sum(t >= 0 for t in truth),
        "labelers": results,
        "calibration": {
            "steps": len(conf),
            "auroc": auroc(conf, correct),
            "ece": expected_calibration_error(conf, correct),
        },
        "binary_vs_per_step_tokens": results["mc_binary_search"]["tokens_per_trace"]
        / max(results["mc_per_step"]["tokens_per_trace"], 1e-9),
    }


def main(problems: int = 64, n: int = 4, k: int = 4) -> None:
    r = bench_label(problems, n, k)
    print(f"{r['traces']} tiny-reasoner traces, {r['erroneous']} with an exact first error")
    print("(answered: share of traces with a usable verdict; an unusable one counts as a miss in F1)")
    print("(err_kept: share of the traces with an exact error that a consensus keeps)")
    head = f"{'labeler':40} {'err_acc':>8} {'cor_acc':>8} {'F1':>6} {'answered':>8} {'kept':>6} {'err_kept':>8}"
    print(f"{head} {'tokens/trace':>13}")
    for name, m in r["labelers"].items():
        kept = f"{m['kept']:.2f}" if "kept" in m else "1.00"
        err_kept = f"{m['erroneous_kept']:.2f}" if "erroneous_kept" in m else "1.00"
        answered = f"{m['answered']:.2f}" if "answered" in m else ""
        print(
            f"{name:40} {m['erroneous_acc']:8.3f} {m['correct_acc']:8.3f} {m['f1']:6.3f} {answered:>8} {kept:>6} "
            f"{err_kept:>8} {m['tokens_per_trace']:13.1f}"
        )
    print(f"prm: 0 tokens generated; it reads {r['labelers']['prm']['read_per_trace']:.1f} tokens per trace (prefill)")
    for name, m in r["labelers"].items():
        if m.get("unusable"):
            print(f"{name} unusable verdicts: {m['unusable']}")
    ps, bs = r["labelers"]["mc_per_step"], r["labelers"]["mc_binary_search"]
    print(
        f"binary search / per-step rollout tokens: {r['binary_vs_per_step_tokens']:.3f}; "
        f"F1 difference: {bs['f1'] - ps['f1']:+.3f}"
    )
    c = r["calibration"]
    print(
        f"step confidence vs true step correctness over {c['steps']} steps: AUROC {c['auroc']:.3f}, ECE {c['ece']:.3f}"
    )
