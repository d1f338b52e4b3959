"""The load run: a synthetic corpus through segment, label, pairs, export and publish, at two sizes.

Reliability item "Load": throughput of the model-free path and peak memory, which must stay flat
as the corpus grows (peak RSS of the largest size within 1.3x of the smallest). Each size runs in a
fresh `python -m flows.bench.load --one N` process so its peak RSS is its own: the child's `VmHWM`
(per stage, reset through `/proc/self/clear_refs` between stages; the stages run in-process, one
worker). Not `wait4`'s `ru_maxrss`: Linux keeps the pre-exec high-water mark, so a child forked
from a large parent (the reliability bench holds a vLLM engine) reports the parent's RSS.

Stages, as the flow runs them (datatrove local executor, one task, one worker, in-process):
- segment: `infra.reliability.synthetic.write_synthetic_run` (`stages.trace_rows.build_trace`:
  thinking/answer split, segmentation, answer extraction, step confidence; no model), 32 traces
  per problem and 128 problems (4,096 traces) per shard at every size: the bundled arithmetic world
  has only 40,372 distinct train problems (2-3 operations), so 8 per problem stops at ~320k traces;
- label: `Label` with the symbolic checker only and no information gain, so no engine starts; the
  answer verifier (math-verify) runs in `answer_fidelity`; chunk_size the stage default (4096);
- pairs: `Pairs` with the model-free kinds (trace, fidelity); chunk_size the stage default (4096);
- export: `export_configs` (per labeled shard) into `configs/`;
- publish: `publish` to a local folder (shards, figures, card).
Frontier needs a student model and is left out (export handles an empty frontier).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flows.pipeline import PIPELINE
from infra.reliability.synthetic import write_synthetic_run
from stages.executor import ExecutorConfig, build_executor
from stages.export.stage import ExportConfig
from stages.label.stage import LabelConfig
from stages.pairs.stage import PairsConfig
from stages.publish.stage import PublishConfig
from stages.shards import row_count, shard_paths

MAX_RATIO = 1.3
PER_PROBLEM = 32  # 1M traces need 31,250 of the 40,372 distinct train problems
SHARD_PROBLEMS = 128  # 4,096 traces per shard, a label and pairs chunk each (their default chunk_size)
DEFAULT_SIZES = [100_000, 1_000_000]
STAGES = ("segment", "label", "pairs", "export", "publish")


def _hwm_mb() -> float | None:
    """This process's peak RSS (VmHWM) in MB, or None where /proc is not there."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so each stage's peak is its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _timed(fn: Callable[[], object]) -> tuple[float, float | None]:
    """(seconds, peak RSS MB during `fn`) for one stage."""
    reset = _reset_hwm()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return seconds, _hwm_mb() if reset else None


def _run_step(step, root: Path, name: str) -> None:
    """A stage step under the flow's executor: local, one task, one worker (in this process)."""
    build_executor([step], ExecutorConfig(tasks=1, workers=1), root / "logs" / name, f"load-{name}").run()


def run_one(n_traces: int, workdir: Path) -> dict:
    """The whole load for `n_traces` traces under `workdir` (a fresh folder); per-stage seconds, rate and peak."""
    root = Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    configs = {
        # One labeler, so consensus needs one source: the sft and prm configs get rows too.
        "label": LabelConfig(labelers=["symbolic"], fidelity={"info_gain": False}, consensus={"min_sources": 1}),
        "pairs": PairsConfig(kinds=["trace", "fidelity"]),
        "export": ExportConfig(),
        "publish": PublishConfig(),
    }
    results: dict = {}

    def stage(name: str) -> Callable[[], None]:
        spec = PIPELINE[name]
        if spec.step is not None:
            step = spec.step(PIPELINE.path(spec.inputs[0], root), PIPELINE.path(name, root), configs[name])
            return lambda: _run_step(step, root, name)
        return lambda: results.update({name: spec.run(PIPELINE.context(name, root, configs[name]))})

    steps = {"segment": lambda: write_synthetic_run(root, n_traces, PER_PROBLEM, SHARD_PROBLEMS)}
    steps |= {name: stage(name) for name in STAGES[1:]}
    stages, start_peak = {}, _hwm_mb()  # imports
    for name in STAGES:
        seconds, peak = _timed(steps[name])
        stages[name] = {"seconds": round(seconds, 2), "traces_per_s": round(n_traces / seconds, 1), "peak_mb": peak}
    rows = {n: sum(row_count(p) for p in shard_paths(PIPELINE.path(n, root))) for n in ("generate", "label", "pairs")}
    published = results["publish"]["configs"]
    return {
        "traces": n_traces,
        "rows": rows,
        "configs": results["export"]["configs"],
        "published": {k: v.get("rows", v) for k, v in published.items()},
        "shards": {k: v.get("shards") for k, v in published.items()},
        "stages": stages,
        "seconds": round(sum(s["seconds"] for s in stages.values()), 2),
        "self_peak_mb": max([start_peak or 0.0] + [s["peak_mb"] or 0.0 for s in stages.values()]) or _hwm_mb(),
    }


def _child(n_traces: int, workdir: Path) -> dict:
    """Run one size in a fresh process; its result, with its peak RSS (the child's own VmHWM)."""
    shutil.rmtree(workdir, ignore_errors=True)  # stages resume: a leftover run would be skipped, not timed
    cmd = [sys.executable, "-m", "flows.bench.load", "--one", str(n_traces), "--workdir", str(workdir)]
    with tempfile.TemporaryFile("w+") as out:
        stderr = None if os.environ.get("LOAD_DEBUG") else subprocess.DEVNULL
        returncode = subprocess.run(cmd, stdout=out, stderr=stderr).returncode
        out.seek(0)
        text = out.read()
    if returncode != 0:
        raise RuntimeError(f"load run of {n_traces} traces failed (exit {returncode}): {text[-2000:]}")
    result = json.loads(text.strip().splitlines()[-1])
    if not result["self_peak_mb"]:
        raise RuntimeError("no /proc/self/status here: the load run's peak memory cannot be measured")
    result["peak_rss_mb"] = round(result["self_peak_mb"], 1)
    return result


def run_load(sizes: list[int], workdir: Path) -> dict:
    """Every size in its own process under `workdir/<size>`; the peak-memory ratio largest/smallest vs 1.3."""
    workdir = Path(workdir)
    runs = [_child(n, workdir / f"n{n}") for n in sizes]
    small, large = min(runs, key=lambda r: r["traces"]), max(runs, key=lambda r: r["traces"])
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    return {
        "runs": runs,
        "memory_ratio": round(ratio, 3),
        "max_ratio": MAX_RATIO,
        "passed": ratio <= MAX_RATIO,
    }


def report(result: dict) -> None:
    for r in result["runs"]:
        print(f"{r['traces']:,} traces: peak RSS {r['peak_rss_mb']:.0f} MB, {r['seconds']:.0f} s in all")
        for name, s in r["stages"].items():
            peak = f", peak {s['peak_mb']:.0f} MB" if s["peak_mb"] is not None else ""
            print(f"  {name:8s} {s['seconds']:9.1f} s {s['traces_per_s']:10,.0f} traces/s{peak}")
        print(f"  rows {r['rows']}, configs {r['configs']}, shards {r['shards']}")
    verdict = "PASS" if result["passed"] else "FAIL"
    sizes = " vs ".join(f"{r['traces']:,}" for r in result["runs"])
    print(f"peak memory ratio ({sizes}) {result['memory_ratio']} (must be <= {result['max_ratio']}): {verdict}")


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(prog="python -m flows.bench.load", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="traces per run")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new temp folder")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child: one size, JSON out
    ap.add_argument("--keep", action="store_true", help="keep the run folders")
    args = ap.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.workdir)))
        return None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="thoughtmill-load-"))
    try:
        result = run_load(args.sizes, workdir)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report(result)
    return result


if __name__ == "__main__":
    main()
