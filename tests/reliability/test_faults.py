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

from flows.pipeline import PIPELINE
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


def traces(work: Path) -> Path:
    return PIPELINE.path("generate", work / "run")


def assert_nothing_lost(run) -> None:
    assert run.rows_compared > 0
    assert (run.rows_lost, run.duplicates, run.rows_added, run.rows_differing) == (0, 0, 0, 0), run
    assert not run.notes, run.notes


def test_label_killed_twice_resumes_to_the_uninterrupted_rows(work):
    run = stage_resume("label", traces(work), work, LABEL, kills=2, seed=1)
    assert run.faults_injected == 2 and run.rows_compared == TRACES
    assert_nothing_lost(run)


def test_pairs_killed_twice_resumes_to_the_uninterrupted_rows(work):
    labeled = baseline("label", traces(work), work, LABEL)
    run = stage_resume("pairs", labeled, work, PAIRS, kills=2, seed=2)
    assert run.faults_injected == 2
    assert_nothing_lost(run)


def test_publish_killed_at_random_times_writes_the_same_bytes(work):
    labeled = baseline("label", traces(work), work, LABEL)
    parts = {"label": labeled, "pairs": baseline("pairs", labeled, work, PAIRS)}
    stems = [p.stem for p in shard_paths(traces(work))[:2]]  # 2 of 6 input shards: a shorter launch
    run = publish_resume(published_run(work, parts, stems), work, {}, kills=2, seed=3)
    assert run.faults_injected >= 1  # a kill that comes after publish finished is not a fault
    assert_nothing_lost(run)


@pytest.mark.skipif(not can_mount(), reason="a size-capped tmpfs needs root (CI's container has it)")
def test_a_full_disk_fails_with_a_clear_error_keeps_finished_shards_and_resumes(work):
    result = disk_full("label", traces(work), work, LABEL)
    assert result["failed_cleanly"], result
    assert "disk full" in result["error"] and "/small-disk/label" in result["error"]  # label/ or label_rejects/
    assert 0 < result["shards_valid"] == result["shards_before_full"]
    assert_nothing_lost(_run(result["resumed"]))


def test_corrupted_input_shards_are_named_and_the_rest_is_done(work):
    result = corrupt_input("label", traces(work), work, LABEL, n_shards=3)
    assert result["failed"] and result["paths_named"] == result["paths_corrupted"] == 2
    assert result["other_shards_done"]
    assert_nothing_lost(_run(result["resumed"]))


def _run(d: dict):
    from infra.reliability.faults import FaultRun

    return FaultRun(**d)


def test_a_shards_writer_removes_what_killed_writers_of_it_left_whatever_their_pid(tmp_path):
    """No pid is tested: a reused pid (here a live one, this process's) or another host's leaves a
    temp as stale as a dead one's; only the temps of the shard being written are its writer's to remove."""
    import os

    from schemas import REJECTS
    from stages.shards import to_table, write_table

    mine = [f".00001-00000.parquet.tmp-{os.getpid()}", ".00001-00000.parquet.tmp-1"]
    others = [f".00002-00000.parquet.tmp-{os.getpid()}", ".00001-00000.parquet.tmpx"]
    for name in mine + others:
        (tmp_path / name).write_bytes(b"half")
    write_table(to_table([], REJECTS), tmp_path / "00001-00000.parquet", REJECTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others + ["00001-00000.parquet"])


def test_a_publish_removes_what_killed_publishes_left_beside_its_folder(tmp_path):
    """Build folders and aside copies of earlier, killed publishes of the same dataset go; a
    neighbouring dataset's stay."""
    import os

    from stages.dataset.hub import publish_local

    left = [f".dataset.tmp-{os.getpid()}-abc", ".dataset.tmp-1-def", f".dataset.old-{os.getpid()}-ghi"]
    for name in left + [".other.tmp-1-x"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text("x")
    publish_local(lambda folder: (folder / "README.md").write_text("card"), tmp_path / "dataset")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-1-x", "dataset"]
    assert (tmp_path / "dataset" / "README.md").read_text() == "card"
