"""Local workers' GPU slices (`executor.gpus_per_worker`), on CPU: 8 declared device ids, and a
step that records what each rank's process was given and when it ran."""

from __future__ import annotations

import json
import os
import time
from itertools import combinations
from pathlib import Path

import pytest
from datatrove.pipeline.base import PipelineStep

from stages.engine import EngineConfig
from stages.executor import ExecutorConfig, build_executor, device_slots

EIGHT = list(range(8))


class Record(PipelineStep):
    """Writes its rank, pid, CUDA_VISIBLE_DEVICES and run interval; rank 0 runs longest, so that
    a worker freed by a short rank starts another while rank 0 still holds its devices."""

    name = "record"

    def __init__(self, out: Path, models: dict | None = None) -> None:
        super().__init__()
        self.out, self.models = out, models or {}

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        start = time.time()
        time.sleep(1.5 if rank == 0 else 0.2)
        devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        row = {"rank": rank, "pid": os.getpid(), "devices": devices, "start": start, "end": time.time()}
        (self.out / f"{rank}.json").write_text(json.dumps(row))


def run_ranks(tmp_path: Path, **executor) -> list[dict]:
    out = tmp_path / "ranks"
    out.mkdir()
    cfg = ExecutorConfig(kind="local", start_method="fork", devices=EIGHT, **executor)
    build_executor([Record(out)], cfg, tmp_path / "logs", "test").run()
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert sorted(r["rank"] for r in rows) == list(range(cfg.tasks))
    return rows


def assert_disjoint_while_concurrent(rows: list[dict], size: int) -> None:
    for r in rows:
        ids = r["devices"].split(",")
        assert len(ids) == size and set(ids) <= {str(d) for d in EIGHT}, r
    for a, b in combinations(rows, 2):
        if a["start"] < b["end"] and b["start"] < a["end"]:  # ran at the same time
            assert not set(a["devices"].split(",")) & set(b["devices"].split(",")), (a, b)
    by_pid: dict[int, set[str]] = {}
    for r in rows:  # CUDA reads the variable once per process: a process keeps its slice
        by_pid.setdefault(r["pid"], set()).add(r["devices"])
    assert all(len(slices) == 1 for slices in by_pid.values()), by_pid


@pytest.mark.parametrize(("workers", "gpus", "tasks"), [(8, 1, 8), (4, 2, 4), (4, 2, 12)])
def test_each_concurrent_worker_sees_its_own_gpus(tmp_path, workers, gpus, tasks):
    rows = run_ranks(tmp_path, workers=workers, tasks=tasks, gpus_per_worker=gpus)
    assert_disjoint_while_concurrent(rows, gpus)
    if tasks > workers:  # the long rank 0 overlapped later ranks: the case `rank % workers` gets wrong
        first = next(r for r in rows if r["rank"] == 0)
        assert any(r["rank"] >= workers and r["start"] < first["end"] for r in rows)


def test_gpus_per_worker_defaults_to_the_stage_tensor_parallel_size(tmp_path):
    tp2 = {"generator": EngineConfig(model="m", tensor_parallel_size=2)}
    cfg = ExecutorConfig(workers=4, tasks=8, devices=EIGHT)
    assert device_slots([Record(tmp_path, tp2)], cfg, tmp_path).per_worker == 2
    http = {"judge": EngineConfig(model="m", backend="openai", base_url="http://x", tensor_parallel_size=4)}
    assert device_slots([Record(tmp_path, http)], cfg, tmp_path) is None  # its server holds the GPUs
    assert device_slots([Record(tmp_path)], cfg, tmp_path) is None  # no model: nothing to assign


def test_too_few_devices_fail_at_build_naming_the_numbers(tmp_path):
    cfg = ExecutorConfig(workers=4, tasks=8, gpus_per_worker=2, devices=[0, 1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match=r"4 worker\(s\) x 2 GPU\(s\) per worker need 8 devices.* gives 6"):
        build_executor([Record(tmp_path)], cfg, tmp_path, "test")
    fewer_tasks = cfg.model_copy(update={"tasks": 3})  # only 3 ranks can ever run at once
    assert device_slots([Record(tmp_path)], fewer_tasks, tmp_path).slots == 3


def test_devices_come_from_the_parent_environment_and_none_means_no_assignment(tmp_path, monkeypatch):
    cfg = ExecutorConfig(workers=2, tasks=2, gpus_per_worker=1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert device_slots([Record(tmp_path)], cfg, tmp_path).devices == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert device_slots([Record(tmp_path)], cfg, tmp_path) is None
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")  # else the GPUs torch counts (none on a CPU machine)
    import torch

    slots = device_slots([Record(tmp_path)], cfg, tmp_path)
    assert (slots.devices if slots else []) == [str(i) for i in range(torch.cuda.device_count())]
