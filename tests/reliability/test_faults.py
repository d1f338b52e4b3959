"""Crash, resume, full disk and corrupted input, on real stages in real child processes.

The reduced form of `thoughtmill bench reliability`: model-free stages (label with the symbolic
checker and answer verifier, pairs of the trace and fidelity kinds, export and publish) over a
synthetic corpus built through the generate stage's own trace builder. Each stage runs under
datatrove's local executor with two workers, as the flow runs it, and is SIGKILLed (the whole
process group) twice while it works, then resumed and compared with an uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.reliability.experiments import (
    baseline,
    can_mount,
    corrupt_input,
    disk_full,
    publish_resume,
    published_run,
    stage_resume,
)
from infra.reliability.synthetic import write_synthetic_run
from stages.shards import shard_paths

LABEL = {"labelers": ["symbolic"], "fidelity": {"info_gain": False}, "chunk_size": 96}  # 96: whole problems
PAIRS = {"kinds": ["trace", "fidelity"], "chunk_size": 96}
TRACES = 4_800  # the bench runs 60,000 with five kills per stage


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    write_synthetic_run(root / "run", TRACES, shard_problems=100)  # 6 shards
    return root


def assert_nothing_lost(run) -> None:
    assert run.rows_compared > 0
    assert (run.rows_lost, run.duplicates, run.rows_added, run.rows_differing) == (0, 0, 0, 0), run
    assert not run.notes, run.notes


def test_label_killed_twice_resumes_to_the_uninterrupted_rows(work):
    run = stage_resume("label", work / "run" / "traces", work, LABEL, kills=2, seed=1)
    assert run.faults_injected == 2 and run.rows_compared == TRACES
    assert_nothing_lost(run)


def test_pairs_killed_twice_resumes_to_the_uninterrupted_rows(work):
    labeled = baseline("label", work / "run" / "traces", work, LABEL)
    run = stage_resume("pairs", labeled, work, PAIRS, kills=2, seed=2)
    assert run.faults_injected == 2
    assert_nothing_lost(run)


def test_publish_killed_at_random_times_writes_the_same_bytes(work):
    labeled = baseline("label", work / "run" / "traces", work, LABEL)
    parts = {"labeled": labeled, "pairs": baseline("pairs", labeled, work, PAIRS)}
    stems = [p.stem for p in shard_paths(work / "run" / "traces")[:2]]  # 2 of 6 input shards: a shorter launch
    run = publish_resume(published_run(work, parts, stems), work, {}, kills=2, seed=3)
    assert run.faults_injected >= 1  # a kill that comes after publish finished is not a fault
    assert_nothing_lost(run)


@pytest.mark.skipif(not can_mount(), reason="a size-capped tmpfs needs root (CI's container has it)")
def test_a_full_disk_fails_with_a_clear_error_keeps_finished_shards_and_resumes(work):
    result = disk_full("label", work / "run" / "traces", work, LABEL)
    assert result["failed_cleanly"], result
    assert "disk full" in result["error"] and "/small-disk/label" in result["error"]  # label/ or label_rejects/
    assert 0 < result["shards_valid"] == result["shards_before_full"]
    assert_nothing_lost(_run(result["resumed"]))


def test_corrupted_input_shards_are_named_and_the_rest_is_done(work):
    result = corrupt_input("label", work / "run" / "traces", work, LABEL, n_shards=3)
    assert result["failed"] and result["paths_named"] == result["paths_corrupted"] == 2
    assert result["other_shards_done"]
    assert_nothing_lost(_run(result["resumed"]))


def _run(d: dict):
    from infra.reliability.faults import FaultRun

    return FaultRun(**d)


def test_temp_entries_of_killed_writers_are_swept_and_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from stages.paths import sweep_dead_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".train-00000.parquet.tmp-{dead_pid}").write_bytes(b"half")
    (tmp_path / f".dataset.tmp-{dead_pid}-abc").mkdir()
    (tmp_path / f".dataset.tmp-{dead_pid}-abc" / "x").write_text("x")
    (tmp_path / f".dataset.old-{dead_pid}-def").mkdir()
    live = [
        f".train-00001.parquet.tmp-{os.getpid()}",
        f".dataset.tmp-{os.getpid()}-ghi",
        "train-00000.parquet",
        ".done",
    ]
    for name in live:
        (tmp_path / name).write_text("keep")
    removed = sweep_dead_temps(tmp_path)
    assert sorted(removed) == sorted(
        [f".train-00000.parquet.tmp-{dead_pid}", f".dataset.tmp-{dead_pid}-abc", f".dataset.old-{dead_pid}-def"]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(live)
