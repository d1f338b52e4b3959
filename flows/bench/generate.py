"""`thoughtmill bench generate`: the generate stage against raw vLLM, side by side in one run.

Both sides use the same engine instance (so the same engine settings), the same prompts and the
same per-request sampling parameters and seeds; runs alternate raw/stage so drift in machine
load hits both. The raw side is what a user of `vllm.LLM.generate` writes for those parameters;
the stage side is the whole stage: batching, detokenizing, splitting, segmentation, answer
extraction and atomic Parquet writes. A third side, raw vLLM with the stage's own vLLM
parameters (flat logprobs, detokenization left to the stage), shows what the stage's own work
costs on top of vLLM's. Segmentation + extraction alone is then measured on
synthetic R1-length traces (see `flows/bench/segmentation.py`).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from flows.bench.segmentation import bench_segmentation
from schemas import PROBLEMS, arrow_schema
from stages.engine import EngineConfig, SamplingConfig
from stages.engine.pool import POOL
from stages.generate.stage import Generate, GenerateConfig, problem_seed
from stages.problems.stage import ProblemSourceConfig, load_problems
from stages.shards import write_table


def user_params(sampling: SamplingConfig, seed: int):
    """What a user of `vllm.LLM.generate` passes for these sampling parameters (vLLM's defaults
    for everything else, so its per-token detokenization of the top-k alternatives included)."""
    from vllm import SamplingParams

    return SamplingParams(
        n=sampling.n,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        max_tokens=sampling.max_tokens,
        seed=seed,
        logprobs=sampling.logprobs,
        stop=sampling.stop or None,
    )


def _raw(engine, prompts: list[str], seeds: list[int], sampling: SamplingConfig, lean: bool = False):
    """Raw `LLM.generate` tokens and seconds: with a user's parameters, or (`lean`) with the
    stage's own vLLM parameters (flat logprobs, detokenization left to the stage)."""
    params = [engine.sampling_params(sampling, seed) if lean else user_params(sampling, seed) for seed in seeds]
    start = time.perf_counter()
    outs = engine.llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    return sum(len(c.token_ids) for o in outs for c in o.outputs), seconds


def _stage(engine, problems_dir: Path, out: Path, cfg: GenerateConfig) -> tuple[int, float]:
    step = Generate(problems_dir, out, cfg, engines={"generator": engine})
    start = time.perf_counter()
    step.run()
    return step.stats["tokens_generated"].total, time.perf_counter() - start


def _print_run(i: int, r: dict) -> None:
    print(
        f"run {i}: raw vLLM {r['raw_tok_s']:.0f} tok/s, generate stage {r['stage_tok_s']:.0f} tok/s, "
        f"ratio {r['ratio']:.3f}; raw vLLM with the stage's own parameters {r['lean_raw_tok_s']:.0f} tok/s",
        flush=True,
    )


def bench_generate(
    model: str = "tiny:teacher", problems: int = 64, n: int = 8, max_tokens: int = 300, repeats: int = 5, on_run=None
) -> dict:
    """Median throughputs and ratios over `repeats` alternating runs; `on_run(i, run)` is called
    as each run completes (a long bench shows its progress)."""
    sampling = SamplingConfig(n=n, max_tokens=max_tokens, temperature=1.0, logprobs=5, seed=0)
    cfg = GenerateConfig(sampling=sampling, chunk_size=problems, store_logprobs=True)
    engine = POOL.open(EngineConfig(model=model))
    rows = list(load_problems(ProblemSourceConfig(split="demo", limit=problems)))
    prompts = [engine.chat_prompt(r["problem"]) for r in rows]
    seeds = [problem_seed(r["problem_id"], sampling.seed) for r in rows]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        write_table(pa.Table.from_pylist(rows, schema=arrow_schema(PROBLEMS)), Path(tmp) / "p" / "p.parquet", PROBLEMS)
        _raw(engine, prompts, seeds, sampling)  # warm-up
        for i in range(repeats):
            raw_tokens, raw_s = _raw(engine, prompts, seeds, sampling)
            stage_tokens, stage_s = _stage(engine, Path(tmp) / "p", Path(tmp) / f"out{i}", cfg)
            lean_tokens, lean_s = _raw(engine, prompts, seeds, sampling, lean=True)
            runs.append(
                {
                    "raw_tok_s": raw_tokens / raw_s,
                    "stage_tok_s": stage_tokens / stage_s,
                    "lean_raw_tok_s": lean_tokens / lean_s,
                    "ratio": (stage_tokens / stage_s) / (raw_tokens / raw_s),
                    "ratio_vs_lean": (stage_tokens / stage_s) / (lean_tokens / lean_s),
                }
            )
            if on_run:
                on_run(i, runs[-1])
    POOL.close()
    return {
        "model": model,
        "problems": problems,
        "n": n,
        "runs": runs,
        "median_raw_tok_s": statistics.median(r["raw_tok_s"] for r in runs),
        "median_stage_tok_s": statistics.median(r["stage_tok_s"] for r in runs),
        "median_ratio": statistics.median(r["ratio"] for r in runs),
        "median_lean_raw_tok_s": statistics.median(r["lean_raw_tok_s"] for r in runs),
        "median_ratio_vs_lean": statistics.median(r["ratio_vs_lean"] for r in runs),
    }


def main(repeats: int = 5, traces: tuple[int, int] = (10_000, 100_000)) -> None:
    g = bench_generate(repeats=repeats, on_run=_print_run)
    print(
        f"generate/raw-vLLM throughput ratio (median of {len(g['runs'])}): {g['median_ratio']:.3f} "
        f"[{g['median_stage_tok_s']:.0f} vs {g['median_raw_tok_s']:.0f} tok/s; {g['problems']} problems x n={g['n']}]"
    )
    print(
        f"generate/raw-vLLM with the stage's own vLLM parameters (flat logprobs, no vLLM detokenization): "
        f"{g['median_ratio_vs_lean']:.3f} [vs {g['median_lean_raw_tok_s']:.0f} tok/s]: what the stage's own "
        "work (detokenizing, splitting, segmenting, writing) costs"
    )
    small, large = (bench_segmentation(t) for t in traces)
    for r in (small, large):
        print(
            f"segmentation+extraction: {r['traces']} traces of ~4,000 tokens at {r['traces_per_s_per_core']:.0f} "
            f"traces/s/core, peak RSS {r['peak_rss_mb']:.1f} MB"
        )
    print(
        f"peak memory {large['traces']} vs {small['traces']} traces: {large['peak_rss_mb'] / small['peak_rss_mb']:.3f}x"
    )
