"""The `curate` Prefect flow: one typed recipe in, the pipeline's stages run in order over shard folders.

Data never passes through Prefect: each stage task runs one stage of the pipeline spec
(`flows/pipeline.py`), reading and writing Parquet shards under the run's output root, and
returns only the stage's statistics. Stages resume at chunk level, so a re-run skips finished
work and never starts an engine for a stage whose outputs are complete. Each stage's outputs are
keyed on its fingerprint (its code, recipe section, model roles and inputs): a re-run with a
change moves that stage's stale outputs (and everything downstream) aside to `stale/` and
recomputes them, instead of silently reusing them. `run.json` is rewritten after every stage,
with the run's funnel (`stages.funnel`): a stage's figures are summed from the stats files beside
its shards (`stages.accounting`), so a skipped or resumed stage reports the whole of its work.

Before a stage starts its engines, the engines and servers this process's pool (`POOL`) holds
that the stage does not use are closed (with one local worker, stages run in this process): a 7B
generator must not hold its GPU memory while the label stage starts its completer.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from flows.fingerprints import claim_outputs
from flows.pipeline import DEFAULT, Pipeline, load_pipeline
from flows.recipe import RecipeBase
from stages.accounting import stage_totals
from stages.engine import EngineConfig
from stages.engine.pool import POOL
from stages.executor import build_executor
from stages.funnel import funnel
from stages.funnel import markdown as funnel_markdown
from stages.secrets import scrub


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


def stage_models(recipe: RecipeBase, section, log_dir: Path) -> tuple[dict[str, EngineConfig], list[str]]:
    """Purpose -> engine config for `section`'s stage, ready to run, and the roles whose engines
    are open as it starts. The pool first closes the engines and servers the stage does not use;
    then served roles it uses are started (or reused) and given as their `base_url`, and roles
    served elsewhere are checked reachable, so a stage fails before it starts when its judge is
    down, with the role and URL in the message."""
    engine_roles = section.engine_roles()
    POOL.retain(recipe.models[role] for role in engine_roles.values())
    models = {
        purpose: POOL.resolve(recipe.models[role], role, log_dir) if purpose in engine_roles else recipe.models[role]
        for purpose, role in section.roles_used().items()
    }
    return models, POOL.live_roles(recipe.models)


def run_stage(pipeline: Pipeline, name: str, recipe: RecipeBase, root: Path, summary: dict | None = None) -> dict:
    """Run one stage of `pipeline` for `recipe` under `root`, without Prefect: a step under the
    recipe's executor unless its outputs are complete (`status` says which happened), a function
    stage in this process."""
    stage, section, start = pipeline[name], getattr(recipe, name), time.time()
    if stage.run is not None:
        result = stage.run(pipeline.context(name, root, section, recipe, summary))
        return {**result, "seconds": round(time.time() - start, 2)}
    source, output = pipeline.path(stage.inputs[0], root), pipeline.path(name, root)
    pending = len(stage.step(source, output, section).pending())
    if pending == 0:  # the figures of the runs that did the work live beside its shards
        return {"status": "complete, skipped", "pending_chunks": 0, "seconds": 0.0, **stage_totals(output)}
    uses_models = bool(section.roles_used())
    models, engines = stage_models(recipe, section, root / "logs" / "servers") if uses_models else ({}, None)
    step = stage.step(source, output, section, models=models)
    build_executor([step], recipe.executor, root / "logs" / name, f"{recipe.name}-{name}").run()
    seconds = round(time.time() - start, 2)
    this_run = _stats(root / "logs" / name)  # datatrove's, of this run's chunks only
    rate = round(this_run.get("rows_in", 0) / seconds, 2) if seconds else None
    result = {"status": "ran", "pending_chunks": pending, "seconds": seconds, "rows_per_second": rate}
    # this run's chunks (run, and skipped as already written by an earlier run); totals: every run's
    this = {"chunks_run": int(this_run.get("chunks_done", 0)), "chunks_skipped": int(this_run.get("chunks_skipped", 0))}
    result |= this | stage_totals(output)
    return result | ({"engines_at_start": engines} if engines is not None else {})


@task(name="stage", task_run_name="{name}", retries=2, retry_delay_seconds=5)
def stage_task(name: str, pipeline: str, recipe: RecipeBase, root: Path, fingerprint: str, summary: dict) -> dict:
    spec = load_pipeline(pipeline)
    stage = spec[name]
    moved = None if stage.rewrites else claim_outputs(root, name, stage.output, fingerprint)
    result = run_stage(spec, name, recipe, root, summary)
    return {**result, "stale_moved_to": moved} if moved else result


def summary_markdown(summary: dict) -> str:
    """Per-stage status, rows, drops by reason, throughput and time, for a Prefect artifact."""
    lines = [
        f"## curate `{summary['recipe']}`",
        "",
        "| stage | status | rows in | rows out | dropped (reason: n) | rows/s | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in summary["stages"].items():
        drops = ", ".join(
            f"{k.split('_', 1)[1]}: {int(v)}" for k, v in s.items() if k.startswith(("rejected_", "dropped_"))
        )
        lines.append(
            f"| {name} | {s.get('status', 'ran')} | {int(s.get('rows_in', 0))} | {int(s.get('rows_out', 0))} "
            f"| {drops or '-'} | {s.get('rows_per_second') or '-'} | {s.get('seconds', '-')} |"
        )
    if summary.get("funnel"):
        lines += ["", "### Funnel", "", funnel_markdown(summary["funnel"])]
    pub = summary["stages"].get("publish", {})
    if pub:
        path = pub.get("path")
        lines += ["", f"Dataset: `{path}` (card: `{path}/README.md`); configs: {pub.get('configs')}"]
    return "\n".join(lines)


def record_stage(summary: dict, name: str, result: dict, root: Path) -> dict:
    """Put stage `name`'s result into the run's `summary` with the funnel recomputed (what the card
    and the inspector show), and rewrite `root/run.json`; returns `summary`."""
    summary["stages"][name] = result
    summary["funnel"] = funnel(summary["stages"])
    (root / "run.json").write_text(scrub(json.dumps(summary, indent=2, default=str)))
    return summary


def run_pipeline(pipeline: str, recipe: RecipeBase, root: Path) -> dict:
    """Every stage of `pipeline` for `recipe` under `root`, as Prefect tasks of the calling flow;
    `run.json` is rewritten after each stage. Returns the run's summary."""
    logger = get_run_logger()
    spec = load_pipeline(pipeline)
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipe.json").write_text(scrub(recipe.model_dump_json(indent=2)))
    prints = spec.fingerprints(recipe)
    summary: dict = {"recipe": recipe.name, "out": str(root), "fingerprints": prints, "stages": {}, "complete": False}
    try:
        for name in spec.names:
            result = stage_task(name, pipeline, recipe, root, prints[name], summary)
            summary["complete"] = name == spec.names[-1]
            record_stage(summary, name, result, root)
            logger.info("%s: %s", name, scrub(str(result)))
    finally:
        POOL.stop_servers()  # served roles never outlive the run, failed or not
    return summary


def artifact_key(kind: str, name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{kind}-{name}".lower())  # Prefect's artifact key alphabet


@flow(name="curate")
def curate(
    recipe: str | dict | BaseModel = "demo",
    out: str | None = None,
    overrides: dict[str, Any] | None = None,
    pipeline: str = DEFAULT,
) -> dict:
    """Run every stage of `pipeline` (`module:attribute`, default the project's) for `recipe` (a
    recipe name or path with dotted-key `overrides`, a mapping, or a Recipe) into `out` (default
    `out/<recipe name>`); a re-run skips finished work."""
    recipe = load_pipeline(pipeline).load(recipe, overrides)
    summary = run_pipeline(pipeline, recipe, Path(out or f"out/{recipe.name}").resolve())
    text = scrub(summary_markdown(summary))
    create_markdown_artifact(text, key=artifact_key("curate", recipe.name), description="run summary")
    return summary
