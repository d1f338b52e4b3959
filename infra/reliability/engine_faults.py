"""Faults of the model stages, on real vLLM with the tiny reasoner (bench only: each restart
starts an engine, tens of seconds on a CPU).

- `generate_resume`: the generate stage SIGKILLed (with its engine) several times and resumed;
- `engine_death`: only the vLLM engine-core process is killed mid-batch. The stage must fail
  cleanly (vLLM's EngineDeadError becomes `EngineUnavailable`), reject nothing because of it,
  and a re-run must end with exactly the uninterrupted run's traces.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from infra.reliability.experiments import baseline, stage_resume
from infra.reliability.faults import FaultRun, _files, _run, compare, output_rows, run_to_end, stage_command
from schemas import PROBLEMS
from stages.problems.stage import ProblemSourceConfig, load_problems
from stages.shards import shard_paths, to_table, write_table


def demo_problems(folder: Path, n: int, shard_size: int = 8) -> Path:
    rows = list(load_problems(ProblemSourceConfig(split="demo", limit=n)))
    for i in range(0, n, shard_size):
        write_table(to_table(rows[i : i + shard_size], PROBLEMS), folder / f"{i // shard_size:05d}.parquet", PROBLEMS)
    return folder


GENERATE = {"sampling": {"n": 4, "temperature": 1.0, "max_tokens": 300, "seed": 0}, "chunk_size": 2}


def generator(model: str = "tiny:teacher") -> dict:
    """The `generator` role, with vLLM's engine core in its own process (not the CPU default,
    in-process): what `engine_death` kills is that process, as a GPU deployment runs it."""
    engine = {"model": model, "enforce_eager": True, "block_size": 32, "kv_cache_memory_bytes": 512 << 20}
    return {"generator": {**engine, "in_process": False}}


def generate_resume(workdir: Path, problems: int = 32, kills: int = 3, seed: int = 0) -> FaultRun:
    folder = demo_problems(workdir / "problems", problems)
    return stage_resume("generate", folder, workdir, GENERATE, kills, seed, max_delay=0.3, models=generator())


def _engine_cores(pid: int) -> list[psutil.Process]:
    """vLLM's engine-core processes under `pid` (V1 runs the model in a child process)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if "EngineCore" in " ".join(_safe_cmdline(c)) or "EngineCore" in _safe_name(c)]


def _safe_cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _safe_name(p: psutil.Process) -> str:
    try:
        return p.name()
    except psutil.Error:
        return ""


def engine_death(workdir: Path, problems: int = 32, timeout: float = 600) -> dict:
    """Kill the engine core (not the stage) after two chunks are written; the stage must fail
    with `EngineUnavailable` within `timeout` (no hang), then resume to the baseline's traces."""
    folder = demo_problems(workdir / "problems", problems)
    base = baseline("generate", folder, workdir, GENERATE, generator())
    out, log = workdir / "engine-death" / "generate", workdir / "generate-engine-death.log"
    cmd = stage_command("generate", folder, out, GENERATE, tasks=1, workers=1, models=generator())
    proc, start, killed = _run(cmd, log), time.time(), None
    while proc.poll() is None and time.time() - start < timeout:
        cores = _engine_cores(proc.pid)
        if cores and _files(out) >= 2:
            killed = cores[0].pid
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.02)
    try:
        rc = proc.wait(timeout)
        hung = False
    except Exception:  # noqa: BLE001 - a stage that does not notice its engine died
        os.killpg(proc.pid, signal.SIGKILL)
        rc, hung = proc.wait(), True
    took = round(time.time() - start, 1)
    text = log.read_text(errors="replace")
    rejected = sum(
        r["reason"] == "generation_error"
        for p in shard_paths(out.parent / "generate_rejects")
        for r in pq.read_table(p, columns=["reason"]).to_pylist()
    )
    run_to_end(cmd, log, timeout)
    result = compare(output_rows([base]), output_rows([out]), FaultRun("generate"))
    return {
        "engine_core_killed": killed is not None,
        "stage_failed": rc != 0,
        "hung": hung,
        "reported": "EngineUnavailable" in text,
        "rows_rejected_for_it": rejected,
        "seconds_to_fail": took,
        "resumed": result.as_dict(),
    }
