"""The reliability experiments, shared by the reduced test suite and `thoughtmill bench reliability`.

Each one runs real stages in child processes on real shards and returns plain figures: kills
and resumes compared row by row with an uninterrupted run, a full disk (a size-capped tmpfs),
corrupted input shards, and an engine that dies mid-batch.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from flows.pipeline import PIPELINE
from infra.reliability.faults import (
    FaultRun,
    compare,
    kill_at_random_times,
    kill_repeatedly,
    of_inputs,
    output_rows,
    publish_command,
    run_to_end,
    stage_command,
    tree_digest,
)
from schemas import SchemaError
from stages.shards import read_table, shard_paths


def _outputs(output: Path) -> list[Path]:
    return [output, output.parent / f"{output.name}_rejects"]


def baseline(stage: str, input_dir: Path, workdir: Path, config: dict, models: dict | None = None) -> Path:
    """`workdir/baseline/<stage>`: the stage's uninterrupted output (run once)."""
    base = workdir / "baseline" / stage
    if not (workdir / "baseline" / f".{stage}.done").exists():
        shutil.rmtree(base, ignore_errors=True)
        cmd = stage_command(stage, input_dir, base, config, models=models)
        run_to_end(cmd, workdir / f"{stage}-baseline.log")
        (workdir / "baseline" / f".{stage}.done").touch()
    return base


def stage_resume(
    stage: str,
    input_dir: Path,
    workdir: Path,
    config: dict,
    kills: int = 3,
    seed: int = 0,
    max_delay: float = 0.5,
    models: dict | None = None,
) -> FaultRun:
    """Uninterrupted run vs a run SIGKILLed `kills` times and resumed, of one stage."""
    base, killed = baseline(stage, input_dir, workdir, config, models), workdir / "killed" / stage
    run = FaultRun(stage)
    cmd = stage_command(stage, input_dir, killed, config, models=models)
    start = time.time()
    run.faults_injected, run.runs_resumed = kill_repeatedly(
        cmd, killed, kills, random.Random(seed), workdir / f"{stage}-killed.log", max_delay
    )
    run.seconds = round(time.time() - start, 1)
    compare(output_rows(_outputs(base)), output_rows(_outputs(killed)), run)
    leftovers = [
        p.name for folder in _outputs(killed) if folder.is_dir() for p in folder.iterdir() if ".tmp-" in p.name
    ]
    if leftovers:
        run.notes.append(f"temp files left by killed writers: {sorted(leftovers)[:5]}")
    return run


def published_run(workdir: Path, parts: dict[str, Path], stems: list[str] | None = None) -> Path:
    """`workdir/published-run`, the run folder export and publish read (`parts`: stage name ->
    its outputs, e.g. label and pairs), its shards linked where the pipeline spec puts them; with
    `stems`, only the outputs of those input shards (a smaller export through the same code)."""
    root = workdir / "published-run"
    for stage, source in parts.items():
        folder = PIPELINE.path(stage, root)
        if folder.exists():
            continue
        folder.mkdir(parents=True)
        for path in shard_paths(source):
            if of_inputs(path, stems):
                (folder / path.name).symlink_to(path)
    return root


def publish_resume(run_root: Path, workdir: Path, config: dict, kills: int = 3, seed: int = 0) -> FaultRun:
    """Export and publish of the run folder `run_root` (what export reads: label, pairs and
    frontier outputs): killed at random times and resumed vs uninterrupted; the published folders
    must match byte for byte."""
    run = FaultRun("publish")
    roots = {}
    for name in ("baseline", "killed"):
        roots[name] = workdir / f"publish-{name}"
        shutil.rmtree(roots[name], ignore_errors=True)
        for source in PIPELINE.inputs_of("export", run_root).values():
            if source.exists():
                shutil.copytree(source, roots[name] / source.relative_to(run_root))
    took = run_to_end(publish_command(roots["baseline"], config), workdir / "publish-baseline.log")
    start = time.time()
    run.faults_injected, run.runs_resumed = kill_at_random_times(
        publish_command(roots["killed"], config),
        kills,
        random.Random(seed),
        workdir / "publish-killed.log",
        (0.3, took),
    )
    run.seconds = round(time.time() - start, 1)
    base, got = tree_digest(roots["baseline"] / "dataset"), tree_digest(roots["killed"] / "dataset")
    base_rows = output_rows(sorted({p.parent for p in (roots["baseline"] / "dataset" / "data").rglob("*.parquet")}))
    got_rows = output_rows(sorted({p.parent for p in (roots["killed"] / "dataset" / "data").rglob("*.parquet")}))
    compare(base_rows, got_rows, run)
    if base != got:
        run.notes.append(f"published files differ: {sorted(set(base.items()) ^ set(got.items()))[:4]}")
    leftovers = [p.name for p in roots["killed"].iterdir() if p.name.startswith(".")]
    if leftovers:
        run.notes.append(f"temporary folders left beside the dataset: {leftovers}")
    return run


@contextmanager
def tmpfs(path: Path, size_bytes: int):
    """A size-capped tmpfs at `path` (needs root, as in CI's container); yields a resize callback."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)], check=True)

    def resize(new_size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={new_size}", str(path)], check=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def disk_full(stage: str, input_dir: Path, workdir: Path, config: dict) -> dict:
    """Run a stage whose output disk holds about half of what it needs: it must fail with a clear
    error, leave every finished shard valid, and, once the disk is larger, resume to exactly the
    uninterrupted run's rows."""
    base = baseline(stage, input_dir, workdir, config)
    need = sum(_folder_bytes(p) for p in _outputs(base) if p.exists())
    mount = workdir / "small-disk"
    out = mount / stage
    log = workdir / f"{stage}-disk-full.log"
    with tmpfs(mount, max(need // 2, 64 * 1024)) as resize:
        try:
            run_to_end(stage_command(stage, input_dir, out, config), log)
            failed = False
        except RuntimeError:
            failed = True
        message = next((line for line in log.read_text(errors="replace").splitlines() if "disk full" in line), "")
        written = shard_paths(out)
        valid = 0
        for path in written:
            try:
                read_table(path, _features(stage))
                valid += 1
            except SchemaError:
                pass
        resize(need * 3)
        run_to_end(stage_command(stage, input_dir, out, config), log)
        result = compare(output_rows(_outputs(base)), output_rows(_outputs(out)), FaultRun(stage))
    return {
        "failed_cleanly": failed and bool(message),
        "error": message.strip()[-300:],
        "shards_before_full": len(written),
        "shards_valid": valid,
        "resumed": result.as_dict(),
    }


def _features(stage: str):
    return PIPELINE[stage].step.out_features


def corrupt_input(stage: str, input_dir: Path, workdir: Path, config: dict, n_shards: int | None = None) -> dict:
    """One input shard with flipped bytes in a data page, one truncated (no footer): the stage
    must do every other shard, then fail naming both paths; restored, a re-run completes (and
    matches the uninterrupted run). `n_shards`: use only the first few input shards (one rank
    reads them all, so fewer is quicker)."""
    base = baseline(stage, input_dir, workdir, config)
    copy = workdir / "corrupt-input"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    for path in shard_paths(input_dir)[:n_shards]:
        shutil.copy(path, copy / path.name)
    shards = shard_paths(copy)
    flipped, truncated = shards[0], shards[-1]
    data = bytearray(flipped.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 8):
        data[i] ^= 0xFF
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    out, log = workdir / "corrupt-out" / stage, workdir / f"{stage}-corrupt.log"
    # One rank reads every shard: datatrove's local executor ends sibling ranks when one fails, so
    # with two ranks the second bad shard is named only if its rank reached it first (a race).
    try:
        run_to_end(stage_command(stage, copy, out, config, tasks=1, workers=1), log)
        failed = False
    except RuntimeError:
        failed = True
    text = log.read_text(errors="replace") + "".join(
        p.read_text(errors="replace") for p in (workdir / "corrupt-out" / "logs").rglob("*.log")
    )
    named = [str(p) for p in (flipped, truncated) if str(p) in text]
    others_done = all(
        any(o.name.startswith(s.stem + "-") for o in shard_paths(out)) for s in shards if s not in (flipped, truncated)
    )
    for path in (flipped, truncated):
        shutil.copy(input_dir / path.name, path)
    run_to_end(stage_command(stage, copy, out, config, tasks=1, workers=1), log)
    stems = [p.stem for p in shards]
    result = compare(output_rows(_outputs(base), stems), output_rows(_outputs(out)), FaultRun(stage))
    return {
        "failed": failed,
        "paths_named": len(named),
        "paths_corrupted": 2,
        "other_shards_done": others_done,
        "resumed": result.as_dict(),
    }
