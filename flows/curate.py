"""The `curate` Prefect flow: one typed recipe in, stage tasks chained over shard folders.

Data never passes through Prefect: each task runs its stage under the datatrove executor the
recipe names, reading and writing Parquet shards under the run's output root, and returns only
the stage's statistics. Stages resume at chunk level, so a re-run skips finished work and never
starts an engine for a stage whose outputs are complete. Each stage's outputs are keyed on a
fingerprint of its recipe section, its inputs' fingerprint and the code version: a re-run with
a changed section moves that stage's stale outputs (and everything downstream) aside to
`stale/` and recomputes them, instead of silently reusing them.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from datatrove.pipeline.base import PipelineStep
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.recipe import Recipe, load_recipe
from stages.base import ShardStage
from stages.configs import export_configs
from stages.executor import build_executor
from stages.frontier import Frontier
from stages.generate import Generate
from stages.inspect import build_report
from stages.label.stage import Label
from stages.pairs.stage import Pairs
from stages.problems.shards import reject_counts, write_problem_shards
from stages.publish.stage import publish
from stages.secrets import scrub
from stages.shards import shard_paths

# Each model stage: (input folder, output folder, step class, recipe section).
STEPS: dict[str, tuple[str, str, type[ShardStage], str]] = {
    "generate": ("problems", "traces", Generate, "generate"),
    "label": ("traces", "labeled", Label, "label"),
    "pairs": ("labeled", "pairs", Pairs, "pairs"),
    "frontier": ("labeled", "frontier", Frontier, "frontier"),
}


def fingerprints(recipe: Recipe) -> dict[str, str]:
    """Per stage: a hash of its recipe section, its input stage's fingerprint and the code version."""
    out = {"problems": _hash(recipe.problems.model_dump(mode="json"), version("thoughtmill"))}
    for name, (source, _, _, section) in STEPS.items():
        upstream = out["problems"] if source == "problems" else out[_producer(source)]
        out[name] = _hash(getattr(recipe, section).model_dump(mode="json"), upstream)
    return out


def _producer(folder: str) -> str:
    return next(name for name, (_, target, _, _) in STEPS.items() if target == folder)


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def claim_outputs(root: Path, name: str, folder: str, fingerprint: str) -> str | None:
    """Record that `folder` holds `name`'s outputs for `fingerprint`. Outputs of another
    fingerprint are moved to `stale/` (never deleted); returns where they went, if anywhere."""
    path = root / "fingerprints.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    moved = None
    if known.get(name, fingerprint) != fingerprint:
        stale = root / "stale" / f"{name}-{known[name]}"
        for part in (folder, f"{folder}_rejects", f"logs/{name}"):
            if (root / part).exists():
                (stale / part).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(root / part, stale / part)
        moved = str(stale)
    known[name] = fingerprint
    path.write_text(json.dumps(known, indent=2))
    return moved


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


def run_stage(name: str, step: ShardStage | PipelineStep, recipe: Recipe, root: Path) -> dict:
    """Run `step` unless its outputs are complete. `status` says which happened, so `run.json`
    shows that a re-run did not redo (e.g. regenerate) finished work."""
    start = time.time()
    pending = len(step.pending()) if isinstance(step, ShardStage) else None
    if pending == 0:
        return {"status": "complete, skipped", "pending_chunks": 0, "seconds": 0.0}
    build_executor([step], recipe.executor, root / "logs" / name, f"{recipe.name}-{name}").run()
    seconds = round(time.time() - start, 2)
    stats = _stats(root / "logs" / name)
    rate = round(stats.get("rows_in", 0) / seconds, 2) if seconds else None
    return {"status": "ran", "pending_chunks": pending, "seconds": seconds, "rows_per_second": rate, **stats}


@task(name="problems", retries=2, retry_delay_seconds=2)
def problems_task(recipe: Recipe, root: Path, fingerprint: str) -> dict:
    moved = claim_outputs(root, "problems", "problems", fingerprint)
    if not shard_paths(root / "problems"):
        write_problem_shards(recipe.problems, root / "problems")
    refused = reject_counts(root / "problems")  # shown with every stage's drops by reason
    return {"shards": len(shard_paths(root / "problems")), **refused, "stale_moved_to": moved}


@task(name="stage", task_run_name="{name}", retries=2, retry_delay_seconds=5)
def stage_task(name: str, recipe: Recipe, root: Path, fingerprint: str) -> dict:
    source, target, step, section = STEPS[name]
    moved = claim_outputs(root, name, target, fingerprint)
    result = run_stage(name, step(root / source, root / target, getattr(recipe, section)), recipe, root)
    return {**result, "stale_moved_to": moved} if moved else result


@task(name="publish", retries=2, retry_delay_seconds=5)
def publish_task(recipe: Recipe, root: Path, summary: dict) -> dict:
    counts = export_configs(root, recipe.export, root / "configs")
    metadata = {"recipe": json.loads(recipe.model_dump_json()), "stages": summary["stages"], "counts": counts}
    return publish({c: root / "configs" / c for c in counts}, metadata, recipe.publish, root)


def summary_markdown(summary: dict) -> str:
    """Per-stage status, rows, drops by reason, throughput and time, for a Prefect artifact."""
    lines = [
        f"## curate `{summary['recipe']}`",
        "",
        "| stage | status | rows in | rows out | dropped (reason: n) | rows/s | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in summary["stages"].items():
        drops = ", ".join(f"{k.removeprefix('rejected_')}: {int(v)}" for k, v in s.items() if k.startswith("rejected_"))
        lines.append(
            f"| {name} | {s.get('status', 'ran')} | {int(s.get('rows_in', 0))} | {int(s.get('rows_out', 0))} "
            f"| {drops or '-'} | {s.get('rows_per_second') or '-'} | {s.get('seconds', '-')} |"
        )
    pub = summary.get("published", {})
    lines += ["", f"Dataset: `{pub.get('path')}` (card: `{pub.get('path')}/README.md`); configs: {pub.get('configs')}"]
    return "\n".join(lines)


@flow(name="curate")
def curate(recipe: Recipe | str = "demo", out: str | None = None, overrides: dict[str, Any] | None = None) -> dict:
    """Run every stage of `recipe` (a Recipe, or a recipe name or path with dotted-key
    `overrides`) into `out` (default `out/<recipe name>`); a re-run skips finished work."""
    logger = get_run_logger()
    if isinstance(recipe, str):
        recipe = load_recipe(recipe, overrides)
    elif overrides:
        raise ValueError("overrides apply to a recipe given by name or path, not to a Recipe object")
    root = Path(out or f"out/{recipe.name}").resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipe.json").write_text(scrub(recipe.model_dump_json(indent=2)))
    prints = fingerprints(recipe)
    summary: dict = {"recipe": recipe.name, "out": str(root), "fingerprints": prints, "stages": {}}
    summary["stages"]["problems"] = problems_task(recipe, root, prints["problems"])
    for name in STEPS:
        summary["stages"][name] = stage_task(name, recipe, root, prints[name])
        logger.info("%s: %s", name, summary["stages"][name])
    summary["published"] = publish_task(recipe, root, summary)
    summary["report"] = str(root / "report.html")
    (root / "run.json").write_text(scrub(json.dumps(summary, indent=2, default=str)))
    build_report(root, root / "report.html")  # the trace inspector reads run.json: after it
    key = re.sub(r"[^a-z0-9-]+", "-", f"curate-{recipe.name}".lower())  # Prefect's artifact key alphabet
    create_markdown_artifact(scrub(summary_markdown(summary)), key=key, description="run summary")
    return summary
