"""`thoughtmill bench prune`, its label-stage half: Monte-Carlo rollouts (binary search) with each
pruning strategy against plain k-sampling, on one fixed set of tiny-teacher traces whose every
step's truth is exact: rollout tokens per labeled trace and the ProcessBench F1 of the first
errors it finds. Arms and seeds are fixed here, before any run; every arm is reported."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from flows.bench import TINY_ENGINE
from flows.bench.label import processbench, sample_traces
from stages.arithmetic.truth import first_error, problem_step_truth
from stages.engine import EngineConfig
from stages.engine.pool import POOL
from stages.label.labelers.mc import MonteCarloLabeler
from stages.prune import StrategyConfig
from stages.rollouts import RolloutConfig

ROLLOUT = {"strategy": "binary_search", "k": 4, "max_tokens": 300, "seed": 5}
ARMS: dict[str, StrategyConfig] = {
    "sample": StrategyConfig(kind="sample"),
    "deepconf-online high (p10)": StrategyConfig(kind="deepconf", percentile=10, warmup=2, window=16),
    "deepconf-online high + consensus 0.95": StrategyConfig(
        kind="deepconf", percentile=10, warmup=2, window=16, consensus=0.95
    ),
    "chosen-token online high (p10)": StrategyConfig(
        kind="deepconf", percentile=10, warmup=2, window=16, confidence="chosen"
    ),
}


def bench_rollouts(problems: int = 48, n: int = 4, model: str = "tiny:teacher") -> dict:
    engine = POOL.open(EngineConfig(model=model, **TINY_ENGINE))
    with tempfile.TemporaryDirectory() as tmp:
        traces = [t for t in sample_traces(engine, problems, n, Path(tmp)) if t["steps"]]
    truth = [first_error(problem_step_truth(t["problem"], [s["text"] for s in t["steps"]])) for t in traces]
    arms = {}
    for name, pruning in ARMS.items():
        labeler = MonteCarloLabeler(engine, RolloutConfig(**ROLLOUT, pruning=pruning))
        start = time.perf_counter()
        got = labeler.label(traces)
        arms[name] = {
            **processbench([g.first_error for g in got], truth),
            "tokens_per_trace": statistics.mean(g.tokens for g in got),
            "seconds": time.perf_counter() - start,
        }
    POOL.close()
    return {"model": model, "traces": len(traces), "erroneous": sum(t >= 0 for t in truth), "arms": arms}


def print_rollouts(r: dict) -> None:
    k, traces, erroneous = ROLLOUT["k"], r["traces"], r["erroneous"]
    print(f"{r['model']} MC rollouts (binary search, k={k}) on {traces} traces, {erroneous} erroneous:")
    plain = r["arms"]["sample"]["tokens_per_trace"]
    for name, a in r["arms"].items():
        print(
            f"{r['model']} | rollouts {name} | tokens/trace {a['tokens_per_trace']:.1f} "
            f"({a['tokens_per_trace'] / max(plain, 1e-9):.0%} of plain) | F1 {a['f1']:.3f} "
            f"(erroneous {a['erroneous_acc']:.3f}, correct {a['correct_acc']:.3f}) | {a['seconds']:.1f} s",
            flush=True,
        )
