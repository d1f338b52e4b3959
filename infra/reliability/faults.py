"""Fault injection: run a stage in its own process group, SIGKILL it at random points, resume,
and compare the result with an uninterrupted run of the same configuration.

A kill lands while the stage is working: the runner waits until the run has written a random
number of new chunks (1 to 3) since it started, plus a random delay, so every kill interrupts
real work (and, often, a write). The final output is compared row id by row id with the
uninterrupted run's: nothing may be lost, duplicated or added.

`python -m infra.reliability.faults stage NAME --input DIR --output DIR --config JSON` runs one
stage of the pipeline spec (`flows/pipeline.py`) under the datatrove executor exactly as the
`curate` flow does (`--models JSON`: role -> engine config, for stages that use models);
`python -m infra.reliability.faults publish --root DIR --config JSON` runs export and publish.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from flows.pipeline import PIPELINE
from stages.engine import EngineConfig
from stages.executor import ExecutorConfig, build_executor

ID_COLUMNS = ("trace_id", "pair_id", "row_id")


@dataclass
class FaultRun:
    """What one kill-and-resume experiment did and found."""

    stage: str
    faults_injected: int = 0
    runs_resumed: int = 0
    rows_compared: int = 0
    rows_lost: int = 0
    duplicates: int = 0
    rows_added: int = 0
    rows_differing: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def stage_command(
    stage: str,
    input_dir: Path,
    output_dir: Path,
    config: dict,
    tasks: int = 2,
    workers: int = 2,
    models: dict | None = None,
) -> list[str]:
    """The command that runs `stage` (its recipe section `config`; `models`: role -> engine config)."""
    return [
        sys.executable,
        "-m",
        "infra.reliability.faults",
        "stage",
        stage,
        "--input",
        str(input_dir),
        "--output",
        str(output_dir),
        "--config",
        json.dumps(config),
        "--tasks",
        str(tasks),
        "--workers",
        str(workers),
        "--models",
        json.dumps(models or {}),
    ]


def publish_command(root: Path, config: dict) -> list[str]:
    return [
        sys.executable,
        "-m",
        "infra.reliability.faults",
        "publish",
        "--root",
        str(root),
        "--config",
        json.dumps(config),
    ]


def _files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*.parquet") if not p.name.startswith(".")) if folder.exists() else 0


def _run(cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def run_to_end(cmd: list[str], log: Path, timeout: float = 600, env: dict | None = None) -> float:
    """Run `cmd` to completion; raises with the log's tail when it fails."""
    start = time.time()
    proc = _run(cmd, log, env)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise RuntimeError(f"{cmd[3:5]} timed out after {timeout}s; log {log}") from None
    if rc != 0:
        raise RuntimeError(f"{cmd[3:5]} exited {rc}; log {log}:\n{log.read_text(errors='replace')[-3000:]}")
    return time.time() - start


def kill_repeatedly(
    cmd: list[str], watch: Path, kills: int, rng: random.Random, log: Path, max_delay: float = 1.0, timeout: float = 600
) -> tuple[int, int]:
    """Start `cmd` up to `kills` times, SIGKILLing its whole process group (the executor and its
    workers) after it has written 1-3 new files under `watch` plus up to `max_delay` seconds;
    then run it to the end. Returns (faults injected, runs resumed)."""
    injected = 0
    for _ in range(kills):
        target = _files(watch) + rng.randint(1, 3)
        proc, start = _run(cmd, log), time.time()
        while proc.poll() is None and _files(watch) < target and time.time() - start < timeout:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, max_delay))
        if proc.poll() is not None:  # finished before the fault: nothing left to interrupt
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        injected += 1
    run_to_end(cmd, log, timeout)
    return injected, injected


def kill_at_random_times(
    cmd: list[str], kills: int, rng: random.Random, log: Path, window: tuple[float, float], timeout: float = 600
) -> tuple[int, int]:
    """Like `kill_repeatedly` for a step without chunk files (publish): kill after a random time
    within `window` seconds of its start."""
    injected = 0
    for _ in range(kills):
        proc = _run(cmd, log)
        try:
            proc.wait(rng.uniform(*window))
            break  # finished first
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            injected += 1
    run_to_end(cmd, log, timeout)
    return injected, injected


def of_inputs(path: Path, stems: list[str] | None) -> bool:
    """Whether the stage output `path` (`<input stem>-<chunk>.parquet`) comes from one of the
    input shards `stems` (any, when None)."""
    return stems is None or path.name.startswith(tuple(f"{stem}-" for stem in stems))


def output_rows(folders: list[Path], stems: list[str] | None = None) -> dict[str, list[int]]:
    """Row id -> content hashes of every row with that id, over the visible shards of `folders`
    (with `stems`: only the outputs of those input shards, `<stem>-<chunk>.parquet`). Polars' row
    hash covers nested lists and structs (a step's label or span changed is a different hash);
    hashes are compared within one process, so the seed never varies."""
    rows: dict[str, list[int]] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.parquet")) if folder.exists() else []:
            if path.name.startswith(".") or not of_inputs(path, stems):
                continue
            frame = pl.from_arrow(pq.read_table(path))
            key = next(c for c in ID_COLUMNS if c in frame.columns)
            for row_id, digest in zip(frame[key].to_list(), frame.hash_rows().to_list()):
                rows.setdefault(f"{folder.name}:{row_id}", []).append(digest)
    return rows


def compare(baseline: dict[str, list[int]], resumed: dict[str, list[int]], run: FaultRun) -> FaultRun:
    """Fill `run`'s counts: ids missing, ids seen more than once, ids not in the baseline, and
    rows whose content differs from the baseline's."""
    run.rows_compared = sum(len(v) for v in baseline.values())
    run.rows_lost = sum(1 for k in baseline if k not in resumed)
    run.duplicates = sum(len(v) - 1 for v in resumed.values() if len(v) > 1)
    run.rows_added = sum(1 for k in resumed if k not in baseline)
    run.rows_differing = sum(1 for k, v in resumed.items() if k in baseline and Counter(v) != Counter(baseline[k]))
    return run


def tree_digest(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every visible file (a published dataset, byte for byte)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            out[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _stage_main(args: argparse.Namespace) -> None:
    spec = PIPELINE[args.name]
    cfg = spec.config.model_validate(json.loads(args.config))
    roles = {role: EngineConfig.model_validate(c) for role, c in json.loads(args.models).items()}
    models = {purpose: roles[role] for purpose, role in cfg.roles_used().items()}
    step = spec.step(args.input, args.output, cfg, models=models)
    # Model-free stages fork their workers: the same ranks, chunks and writes as the flow's
    # spawned ones, without each worker importing everything again (a spawned worker spends ~2.5
    # CPU-s on imports; the reduced suite launches stages ~16 times on 2 cores). Stages with
    # engines spawn, as the flow does: a forked vLLM engine is not safe.
    start_method = "spawn" if models else "fork"
    executor = ExecutorConfig(tasks=args.tasks, workers=args.workers, start_method=start_method)
    logs = Path(args.output).parent / "logs" / Path(args.output).name
    build_executor([step], executor, logs, f"faults-{args.name}").run()


def _publish_main(args: argparse.Namespace) -> None:
    """Export then publish, as the flow runs them, over the run folder `--root`."""
    cfg, root = json.loads(args.config), Path(args.root)
    for name in ("export", "publish"):
        stage = PIPELINE[name]
        stage.run(PIPELINE.context(name, root, stage.config.model_validate(cfg.get(name, {}))))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m infra.reliability.faults")
    sub = ap.add_subparsers(dest="command", required=True)
    st = sub.add_parser("stage")
    st.add_argument("name", help="a step stage of the pipeline spec (generate, label, pairs, frontier)")
    st.add_argument("--input", required=True)
    st.add_argument("--output", required=True)
    st.add_argument("--config", default="{}")
    st.add_argument("--tasks", type=int, default=2)
    st.add_argument("--workers", type=int, default=2)
    st.add_argument("--models", default="{}", help="JSON: model role -> engine config")
    st.set_defaults(func=_stage_main)
    pub = sub.add_parser("publish")
    pub.add_argument("--root", required=True)
    pub.add_argument("--config", default="{}")
    pub.set_defaults(func=_publish_main)
    args = ap.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
