"""Run a list of stages under the datatrove executor a recipe names: local, Slurm or Ray."""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import Literal

from datatrove.executor.base import PipelineExecutor
from datatrove.executor.ray import RayPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from pydantic import BaseModel, ConfigDict, Field

from stages.engine import EngineConfig


class ExecutorConfig(BaseModel):
    """`local` runs ranks in worker processes here; `slurm` and `ray` scale the same pipeline
    past one machine (each rank builds its own engine)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["local", "slurm", "ray"] = "local"
    tasks: int = 1
    workers: int = 1
    start_method: Literal["forkserver", "spawn", "fork"] = "spawn"
    # local: GPUs each worker process sees (its own CUDA_VISIBLE_DEVICES slice of `devices`);
    # None: the largest tensor_parallel_size of the vLLM engines the stage uses (0 without any)
    gpus_per_worker: int | None = Field(None, ge=0)
    # local: the device ids to slice; None: the parent's CUDA_VISIBLE_DEVICES, else every GPU torch sees
    devices: list[int | str] | None = None
    # slurm (the per-task resources: ray too)
    partition: str | None = None
    time: str = "24:00:00"
    cpus_per_task: int = 8
    mem_per_cpu_gb: float = 2
    gpus_per_task: int = 0
    sbatch_args: dict[str, str] = {}
    # ray: "auto" or a head's host:port; None: ray.init's default (a cluster started on this
    # machine, else a new local one)
    address: str | None = None


def build_executor(
    pipeline: list[PipelineStep], cfg: ExecutorConfig, logging_dir: Path, job_name: str
) -> PipelineExecutor:
    if cfg.kind == "local":
        from datatrove.executor import LocalPipelineExecutor

        share_cores(cfg.workers)
        assign = device_slots(pipeline, cfg, Path(logging_dir))
        return LocalPipelineExecutor(
            pipeline=([assign] if assign else []) + list(pipeline),
            tasks=cfg.tasks,
            workers=cfg.workers,
            logging_dir=str(logging_dir),
            start_method=cfg.start_method,
            skip_completed=False,  # stages resume per chunk; a rank marker must not hide missing chunks
        )
    if cfg.kind == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        if not cfg.partition:
            raise ValueError("executor.partition is required for slurm")
        return SlurmPipelineExecutor(
            pipeline=pipeline,
            tasks=cfg.tasks,
            workers=cfg.workers,
            time=cfg.time,
            partition=cfg.partition,
            cpus_per_task=cfg.cpus_per_task,
            mem_per_cpu_gb=cfg.mem_per_cpu_gb,
            gpus_per_task=cfg.gpus_per_task,
            job_name=job_name,
            logging_dir=str(logging_dir),
            sbatch_args=cfg.sbatch_args,
            skip_completed=False,
        )
    return RayExecutor(
        pipeline=pipeline,
        tasks=cfg.tasks,
        workers=cfg.workers,
        logging_dir=str(logging_dir),
        cpus_per_task=cfg.cpus_per_task,
        mem_per_cpu_gb=cfg.mem_per_cpu_gb,
        gpus_per_task=cfg.gpus_per_task,
        skip_completed=False,
        address=cfg.address,
    )


class RayExecutor(RayPipelineExecutor):
    """datatrove's Ray executor leaves `ray.init` to its caller (else its first `ray.put` starts
    a new local cluster): this one connects to `address` first."""

    def __init__(self, *args, address: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.address = address

    def run(self):
        import ray

        global _RAY_ADDRESS
        if ray.is_initialized() and self.address is not None and self.address != _RAY_ADDRESS:
            ray.shutdown()  # connected elsewhere (by the caller, or an earlier stage with another address)
        if not ray.is_initialized():
            ray.init(address=self.address)
            _RAY_ADDRESS = self.address
        return super().run()


_RAY_ADDRESS: str | None = None  # the address this process's ray.init was given here


def share_cores(workers: int) -> None:
    """Give each of `workers` local worker processes its share of this machine's cores as torch
    threads (OMP_NUM_THREADS, read by torch when a worker starts and respected by vLLM), unless
    the user set it. torch's default is one OpenMP thread per core in *every* process, and its
    threads spin-wait at each op for one another: with two engines on two cores each op waited
    for a descheduled thread (the hostile-input run, generate and label on the tiny reasoner,
    took 3x longer beside one busy core). Set in this process, so its later executors agree."""
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ["OMP_NUM_THREADS"] = str(max(1, cores // workers))


def device_slots(pipeline: list[PipelineStep], cfg: ExecutorConfig, logging_dir: Path) -> DeviceSlot | None:
    """The step that gives each local worker its own GPUs, or None where there is nothing to
    slice (no GPU wanted, or none on this machine). Too few devices is an error now, not a
    crash minutes later in an engine start."""
    per_worker = cfg.gpus_per_worker if cfg.gpus_per_worker is not None else stage_gpus(pipeline)
    devices, source = declared_devices(cfg) if per_worker else ([], "")
    if not devices:
        return None
    workers = cfg.workers if cfg.workers > 0 else cfg.tasks  # datatrove: -1 means one per task
    slots = max(1, min(workers, cfg.tasks))  # never more ranks at once than tasks
    if slots * per_worker > len(devices):
        raise ValueError(
            f"executor: {slots} worker(s) x {per_worker} GPU(s) per worker need {slots * per_worker} devices, "
            f"but {source} gives {len(devices)}: {devices} (lower executor.workers or gpus_per_worker)"
        )
    return DeviceSlot(devices, per_worker, slots, logging_dir / "device-slots")


def stage_gpus(pipeline: list[PipelineStep]) -> int:
    """The largest tensor_parallel_size of the in-process vLLM engines the steps use (an HTTP
    engine's GPUs belong to its server, not to the worker)."""
    sizes = [
        config.tensor_parallel_size
        for step in pipeline
        for config in getattr(step, "models", {}).values()
        if isinstance(config, EngineConfig) and config.backend == "vllm"
    ]
    return max(sizes, default=0)


def declared_devices(cfg: ExecutorConfig) -> tuple[list[str], str]:
    """(device ids, where they came from): `executor.devices`, else the parent's
    CUDA_VISIBLE_DEVICES, else the GPUs torch counts (NVML: no CUDA init in this process)."""
    if cfg.devices is not None:
        return [str(d) for d in cfg.devices], "executor.devices"
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = []
        for d in (d.strip() for d in env.split(",")):
            if not d or d.startswith("-"):  # CUDA stops at an invalid id ("-1" hides every GPU)
                break
            ids.append(d)
        return ids, "CUDA_VISIBLE_DEVICES"
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # no torch, no driver: no GPUs
        count = 0
    return [str(i) for i in range(count)], "torch.cuda.device_count()"


_CLAIMED: dict[tuple[int, str], int] = {}  # (pid, lock dir) -> slot, held for the process's life
_LOCKS: list[int] = []  # their file descriptors, never closed (closing would release the slot)


class DeviceSlot:
    """First step of every local rank: sets the worker process's CUDA_VISIBLE_DEVICES to its
    slot's `per_worker` devices, before the stage starts an engine (engines start in the
    stage's `setup`, and CUDA reads the variable once per process).

    A slot belongs to a worker *process* for its life, not to a rank: datatrove runs `tasks`
    ranks on a pool of `workers` processes, so `rank % workers` would give rank 8 the devices of
    rank 0 while rank 0 still runs, and the pool's local-rank tokens move between processes (a
    process whose CUDA saw slot 1 may draw token 0 next). Each process takes the lowest free
    slot with an exclusive `flock` on `<slot>.lock` under the stage's logging dir and keeps it
    until it exits (the kernel releases it, even on SIGKILL, and a replacement process takes
    it): the pool never has more than `workers` processes, so slots never collide. One slot (one
    worker: ranks run one after another in the flow's process) needs no lock."""

    def __init__(self, devices: list[str], per_worker: int, slots: int, lock_dir: Path) -> None:
        self.devices, self.per_worker, self.slots, self.lock_dir = devices, per_worker, slots, lock_dir

    def __repr__(self) -> str:
        return f"DeviceSlot({self.slots} x {self.per_worker} of {self.devices})"

    def __call__(self, data=None, rank: int = 0, world_size: int = 1):
        slot = claim_slot(self.lock_dir, self.slots) if self.slots > 1 else 0
        set_visible_devices(self.devices[slot * self.per_worker : (slot + 1) * self.per_worker])
        return data


def claim_slot(lock_dir: Path, slots: int) -> int:
    """This process's slot under `lock_dir`: the one it holds, else the lowest free one."""
    key = (os.getpid(), str(lock_dir))  # a forked child does not inherit its parent's claim
    if key in _CLAIMED:
        return _CLAIMED[key]
    lock_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(slots):
        fd = os.open(lock_dir / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _CLAIMED[key] = slot
        _LOCKS.append(fd)
        return slot
    raise RuntimeError(f"all {slots} device slots under {lock_dir} are held (another run on the same logs?)")


def set_visible_devices(ids: list[str]) -> None:
    """Point this process at `ids`, unless its CUDA is already up: then the variable no longer
    applies, which is fine only if its visible devices start with `ids` (an engine takes the
    first ones), an error otherwise."""
    value, current = ",".join(ids), os.environ.get("CUDA_VISIBLE_DEVICES")
    torch = sys.modules.get("torch")
    if value != current and torch is not None and torch.cuda.is_initialized():
        if current is not None and current.split(",")[: len(ids)] == ids:
            return
        raise RuntimeError(
            f"CUDA is already initialized in process {os.getpid()} with CUDA_VISIBLE_DEVICES={current}; "
            f"its device slot is {value} (one worker runs every stage in this process: give "
            "executor.gpus_per_worker the largest tensor_parallel_size of the run)"
        )
    os.environ["CUDA_VISIBLE_DEVICES"] = value
