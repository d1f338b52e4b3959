"""Run a list of stages under the datatrove executor a recipe names: local, Slurm or Ray."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from datatrove.executor.base import PipelineExecutor
from datatrove.pipeline.base import PipelineStep
from pydantic import BaseModel, ConfigDict


class ExecutorConfig(BaseModel):
    """`local` runs ranks in worker processes here; `slurm` and `ray` scale the same pipeline
    past one machine (each rank builds its own engine)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["local", "slurm", "ray"] = "local"
    tasks: int = 1
    workers: int = 1
    start_method: Literal["forkserver", "spawn", "fork"] = "spawn"
    # slurm
    partition: str | None = None
    time: str = "24:00:00"
    cpus_per_task: int = 8
    mem_per_cpu_gb: float = 2
    gpus_per_task: int = 0
    sbatch_args: dict[str, str] = {}


def build_executor(
    pipeline: list[PipelineStep], cfg: ExecutorConfig, logging_dir: Path, job_name: str
) -> PipelineExecutor:
    if cfg.kind == "local":
        from datatrove.executor import LocalPipelineExecutor

        share_cores(cfg.workers)

        return LocalPipelineExecutor(
            pipeline=pipeline,
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
    from datatrove.executor import RayPipelineExecutor

    return RayPipelineExecutor(
        pipeline=pipeline,
        tasks=cfg.tasks,
        workers=cfg.workers,
        logging_dir=str(logging_dir),
        cpus_per_task=cfg.cpus_per_task,
        mem_per_cpu_gb=cfg.mem_per_cpu_gb,
        gpus_per_task=cfg.gpus_per_task,
        skip_completed=False,
    )


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
