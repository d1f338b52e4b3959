"""`thoughtmill bench prune`: each generation strategy against plain sampling + majority vote at the
same `n`, on the bundled arithmetic eval split, for the tiny teacher and student.

Per arm: tokens generated (and their share of plain sampling's), the voted answer's accuracy with
a bootstrap 95% interval over problems, and wall time. Every arm and its settings are fixed here,
before any run (seeds included): the table reports all of them. `sample-chunked` is plain sampling
advanced `chunk_tokens` at a time with nothing stopped: what chunk-boundary stopping costs by
itself (wall time, prefill recomputed past the prefix cache). Calibration: how well a trace's
lowest group confidence (and its mean token confidence) separates right answers from wrong ones
(AUROC over plain sampling's traces), which bounds what any confidence filter can do. Then the
label stage's MC rollouts with each pruning strategy (`flows/bench/prune_rollouts.py`).
"""

from __future__ import annotations

import time

import numpy as np

from flows.bench import TINY_ENGINE
from flows.bench.prune_rollouts import bench_rollouts, print_rollouts
from stages.engine import EngineConfig, Generation, SamplingConfig
from stages.engine.pool import POOL
from stages.generate.stage import problem_seed
from stages.problems.stage import ProblemSourceConfig, load_problems
from stages.prune import Outcome, StrategyConfig, final_answer, run_strategy, vote
from stages.prune.chunked import Partial, advance, sub_seed
from stages.prune.confidence import lowest_group_confidence, token_confidence
from stages.score.metrics import auroc, bootstrap_interval, bootstrap_pooled

CHOSEN = {"confidence": "chosen", "window": 16}
SAMPLING = SamplingConfig(n=8, temperature=1.0, max_tokens=400, logprobs=5, seed=0)
ARMS: dict[str, tuple[StrategyConfig, bool]] = {  # name -> (strategy, confidence-weighted vote)
    "sample": (StrategyConfig(kind="sample"), False),
    "deepconf-offline eta=50%": (StrategyConfig(kind="deepconf", mode="offline", eta=0.5), True),
    "deepconf-online high (p10)": (StrategyConfig(kind="deepconf", percentile=10, warmup=2), True),
    "deepconf-online low (p90)": (StrategyConfig(kind="deepconf", percentile=90, warmup=2), True),
    "deepconf-online high + consensus 0.95": (
        StrategyConfig(kind="deepconf", percentile=10, warmup=2, consensus=0.95),
        True,
    ),
    "cat b=2 (p50)": (StrategyConfig(kind="cat", branch=2, percentile=50), True),
    "think_at_n eta=50%": (StrategyConfig(kind="think_at_n", eta=0.5), False),
    # added after the first run showed DeepConf's statistic blind to the tiny models' errors
    # (sampled slips): the drawn token's logprob, over shorter windows
    "chosen-token offline eta=50%": (StrategyConfig(kind="deepconf", mode="offline", eta=0.5, **CHOSEN), True),
    "chosen-token online high (p10)": (StrategyConfig(kind="deepconf", percentile=10, warmup=2, **CHOSEN), True),
    "chosen-token online low (p90)": (StrategyConfig(kind="deepconf", percentile=90, warmup=2, **CHOSEN), True),
    "chosen-token online high + consensus 0.95": (
        StrategyConfig(kind="deepconf", percentile=10, warmup=2, consensus=0.95, **CHOSEN),
        True,
    ),
}


def chunked_sample(generate, prompts, seeds, sampling, chunk_tokens: int) -> list[Outcome]:
    """Plain sampling through the chunked driver (nothing stopped): the cost of the boundaries."""
    traces = [[Partial(p, sub_seed(s, i), index=i) for i in range(sampling.n)] for p, s in zip(prompts, seeds)]
    flat = [p for ps in traces for p in ps]
    while any(not p.done for p in flat):
        advance(generate, flat, sampling, chunk_tokens)
    return [
        Outcome(kept=[(p.index, p.sample) for p in ps if p.sample], weights=[1.0] * sum(bool(p.sample) for p in ps))
        for ps in traces
    ]


def _correct(answer: str | None, gold: str) -> bool:
    return answer is not None and answer.strip() == str(gold).strip()


def calibration(rows, prompts, outcomes, window: int) -> dict:
    """AUROC (with bootstrap intervals over problems), over plain sampling's traces, of statistics
    of a trace for its answer being right: the lowest group confidence and the mean token
    confidence by DeepConf's token confidence, and the lowest group of the drawn tokens' logprobs."""
    stats = {
        "auroc_lowest_group": lambda s: lowest_group_confidence(token_confidence(s), window),
        "auroc_mean_token": lambda s: float(token_confidence(s).mean()) if s.topk_mean else np.nan,
        "auroc_lowest_group_chosen": lambda s: lowest_group_confidence(token_confidence(s, "chosen"), CHOSEN["window"]),
    }
    oks = [
        np.array([_correct(final_answer(p, s), r["answer"]) for _, s in o.kept], dtype=bool)
        for r, p, o in zip(rows, prompts, outcomes)
    ]
    out = {
        name: bootstrap_pooled([(np.array([f(s) for _, s in o.kept]), ok) for o, ok in zip(outcomes, oks)], auroc)
        for name, f in stats.items()
    }
    return out | {"trace_accuracy": float(np.mean(np.concatenate(oks)))}


def bench_model(model: str, problems: int, on_arm=None) -> dict:
    engine = POOL.open(EngineConfig(model=model, **TINY_ENGINE))
    rows = list(load_problems(ProblemSourceConfig(split="eval", limit=problems)))
    prompts = [engine.chat_prompt(r["problem"]) for r in rows]
    seeds = [problem_seed(r["problem_id"], SAMPLING.seed) for r in rows]
    generate = engine.generate
    engine.generate(prompts[:4], SAMPLING.model_copy(update={"n": 2, "max_tokens": 32}), seeds[:4])  # warm-up
    arms, plain, plain_gens = {}, None, None

    def record(name: str, outs: list[Outcome], seconds: float, weighted: bool, cache: dict) -> None:
        correct = [_correct(vote(p, o, weighted), r["answer"]) for r, p, o in zip(rows, prompts, outs)]
        majority = [_correct(vote(p, o, False), r["answer"]) for r, p, o in zip(rows, prompts, outs)]
        arms[name] = {
            "tokens": sum(o.tokens_generated for o in outs),
            "accuracy_majority": float(np.mean(majority)),  # the kept traces voting unweighted
            "tokens_pruned": sum(o.tokens_pruned for o in outs),
            "kept_per_problem": float(np.mean([len(o.kept) for o in outs])),
            "accuracy": bootstrap_interval([float(c) for c in correct]),
            "correct": correct,
            "seconds": seconds,
            "prefill_recomputed": cache["queries"] - cache["hits"],
        }
        if "sample" in arms and name != "sample":  # paired: the same problems, arm minus plain
            diff = np.array(correct, dtype=float) - np.array(arms["sample"]["correct"], dtype=float)
            arms[name]["accuracy_minus_plain"] = bootstrap_interval(diff)
        if on_arm:
            on_arm(model, name, arms[name], arms.get("sample"))

    def timed(fn):
        before = engine.cache_stats()
        start = time.perf_counter()
        outs = fn()
        seconds = time.perf_counter() - start
        after = engine.cache_stats()
        return outs, seconds, {k: after[k] - before[k] for k in after}

    for name, (strategy, weighted) in ARMS.items():
        if "offline" in name:  # the same traces as plain sampling: filter those
            outs, seconds, cache = timed(
                lambda s=strategy, g=plain_gens: run_strategy(s, lambda *_: g, prompts, seeds, SAMPLING)
            )
            seconds += arms["sample"]["seconds"]
        else:
            outs, seconds, cache = timed(lambda s=strategy: run_strategy(s, generate, prompts, seeds, SAMPLING, model))
        if name == "sample":
            plain = outs
            plain_gens = _as_generations(prompts, outs)
        record(name, outs, seconds, weighted, cache)
    outs, seconds, cache = timed(lambda: chunked_sample(generate, prompts, seeds, SAMPLING, 32))
    record("sample-chunked (32)", outs, seconds, False, cache)
    result = {"model": model, "problems": len(rows), "n": SAMPLING.n, "arms": arms}
    result["boundary_cost"] = boundary_cost(generate, prompts, seeds)
    result["calibration"] = calibration(rows, prompts, plain, ARMS["deepconf-online high (p10)"][0].window)
    POOL.close()
    return result


def boundary_cost(generate, prompts, seeds, repeats: int = 5, chunk_tokens: int = 32) -> dict:
    """Wall time of plain sampling and of the same sampling advanced `chunk_tokens` at a time,
    interleaved `repeats` times: median [min, max] of each and of their per-repeat ratio."""
    plain, chunked = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        generate(prompts, SAMPLING, seeds)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        chunked_sample(generate, prompts, seeds, SAMPLING, chunk_tokens)
        chunked.append(time.perf_counter() - start)
    ratio = [c / p for p, c in zip(plain, chunked)]
    series = {"plain": plain, "chunked": chunked, "ratio": ratio}
    return {k: (float(np.median(v)), min(v), max(v)) for k, v in series.items()}


def _as_generations(prompts, outs: list[Outcome]):
    return [Generation(p, [s for _, s in o.kept]) for p, o in zip(prompts, outs)]


def _diff(a: dict) -> str:
    if "accuracy_minus_plain" not in a:
        return ""
    d, lo, hi = a["accuracy_minus_plain"]
    return f" (minus plain {d:+.3f} [{lo:+.3f}, {hi:+.3f}])"


def _print_arm(model: str, name: str, a: dict, plain: dict | None) -> None:
    est, lo, hi = a["accuracy"]
    share = a["tokens"] / plain["tokens"] if plain else 1.0
    print(
        f"{model} | {name} | tokens {a['tokens']} ({share:.0%} of plain, pruned {a['tokens_pruned']}) | "
        f"acc {est:.3f} [{lo:.3f}, {hi:.3f}]{_diff(a)} (unweighted {a['accuracy_majority']:.3f}) | "
        f"kept/problem {a['kept_per_problem']:.2f} | "
        f"{a['seconds']:.1f} s | "
        f"prefill recomputed {a['prefill_recomputed']}",
        flush=True,
    )


def main(problems: int = 100, models: tuple[str, ...] = ("tiny:teacher", "tiny:student")) -> list[dict]:
    results = []
    for model in models:
        r = bench_model(model, problems, on_arm=_print_arm)
        cal = r["calibration"]
        low, mean, chosen = cal["auroc_lowest_group"], cal["auroc_mean_token"], cal["auroc_lowest_group_chosen"]
        print(
            f"{model} calibration over plain traces (accuracy {cal['trace_accuracy']:.3f}): AUROC lowest group "
            f"confidence {low[0]:.3f} [{low[1]:.3f}, {low[2]:.3f}], mean token confidence {mean[0]:.3f} "
            f"[{mean[1]:.3f}, {mean[2]:.3f}], lowest group of chosen-token logprobs {chosen[0]:.3f} "
            f"[{chosen[1]:.3f}, {chosen[2]:.3f}]",
            flush=True,
        )
        b = r["boundary_cost"]
        print(
            f"{model} chunk boundaries (32 tokens), median [min, max] of 5 interleaved: plain {b['plain'][0]:.1f} s "
            f"[{b['plain'][1]:.1f}, {b['plain'][2]:.1f}], chunked {b['chunked'][0]:.1f} s "
            f"[{b['chunked'][1]:.1f}, {b['chunked'][2]:.1f}], ratio {b['ratio'][0]:.2f}x "
            f"[{b['ratio'][1]:.2f}, {b['ratio'][2]:.2f}]",
            flush=True,
        )
        results.append(r)
    rollouts = bench_rollouts()
    print_rollouts(rollouts)
    return [*results, rollouts]
