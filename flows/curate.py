"""The `curate` Prefect flow: one typed recipe in, stage tasks chained over shard folders.

Data never passes through Prefect: each task runs its stage under the datatrove executor the
recipe names, reading and writing Parquet shards under the run's output root, and returns only
the stage's statistics. Stages resume at chunk level, so a re-run skips finished work and never
starts an engine for a stage whose outputs are complete.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from prefect import flow, get_run_logger, task

from flows.recipe import Recipe
from stages.configs import export_configs
from stages.executor import build_executor
from stages.frontier import Frontier
from stages.generate import Generate
from stages.label.stage import Label
from stages.pairs.stage import Pairs
from stages.problems.shards import write_problem_shards
from stages.publish.stage import publish
from stages.shards import shard_paths


def _stats(logging_dir: Path) -> dict:
    """Totals of a stage's datatrove stats (summed over ranks)."""
    path = logging_dir / "stats.json"
    if not path.exists():
        return {}
    out: dict[str, float] = {}
    for block in json.loads(path.read_text()):
        for key, value in block.get("stats", {}).items():
            out[key] = out.get(key, 0) + (value["total"] if isinstance(value, dict) else value)
    return out


def run_stage(name: str, step: PipelineStep, recipe: Recipe, root: Path) -> dict:
    start = time.time()
    build_executor([step], recipe.executor, root / "logs" / name, f"{recipe.name}-{name}").run()
    return {"seconds": round(time.time() - start, 2), **_stats(root / "logs" / name)}


@task(name="problems", retries=2, retry_delay_seconds=2)
def problems_task(recipe: Recipe, root: Path) -> dict:
    if not shard_paths(root / "problems"):
        write_problem_shards(recipe.problems, root / "problems")
    return {"shards": len(shard_paths(root / "problems"))}


# Each model stage: (input folder, output folder, step class, recipe section).
STEPS = {
    "generate": ("problems", "traces", Generate, "generate"),
    "label": ("traces", "labeled", Label, "label"),
    "pairs": ("labeled", "pairs", Pairs, "pairs"),
    "frontier": ("labeled", "frontier", Frontier, "frontier"),
}


@task(name="stage", task_run_name="{name}", retries=2, retry_delay_seconds=5)
def stage_task(name: str, recipe: Recipe, root: Path) -> dict:
    source, target, step, section = STEPS[name]
    return run_stage(name, step(root / source, root / target, getattr(recipe, section)), recipe, root)


@task(name="publish", retries=2, retry_delay_seconds=5)
def publish_task(recipe: Recipe, root: Path, summary: dict) -> dict:
    counts = export_configs(root, recipe.export, root / "configs")
    metadata = {"recipe": json.loads(recipe.model_dump_json()), "stages": summary["stages"], "counts": counts}
    return publish({c: root / "configs" / c for c in counts}, metadata, recipe.publish, root)


@flow(name="curate")
def curate(recipe: Recipe, out: str) -> dict:
    """Run every stage of `recipe` into the folder `out`; a re-run skips finished work."""
    logger = get_run_logger()
    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipe.json").write_text(recipe.model_dump_json(indent=2))
    summary: dict = {"recipe": recipe.name, "out": str(root), "stages": {}}
    summary["stages"]["problems"] = problems_task(recipe, root)
    for name in STEPS:
        summary["stages"][name] = stage_task(name, recipe, root)
        logger.info("%s: %s", name, summary["stages"][name])
    summary["published"] = publish_task(recipe, root, summary)
    (root / "run.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
