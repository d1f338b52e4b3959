"""Write problems from a source into `problems` shards of a fixed size."""

from __future__ import annotations

from pathlib import Path

from schemas import PROBLEMS
from stages.problems.sources import ProblemSourceConfig, load_problems
from stages.shards import batched, to_table, write_table


def write_problem_shards(cfg: ProblemSourceConfig, out: Path, shard_size: int = 1000) -> list[Path]:
    paths = []
    for i, rows in enumerate(batched(load_problems(cfg), shard_size)):
        paths.append(write_table(to_table(rows, PROBLEMS), Path(out) / f"problems-{i:05d}.parquet", PROBLEMS))
    return paths
