"""The publish stage: every config's shards, the figures and the card, to a local folder or the Hub.

Publishing is a single-process reduction over the curated shard folders, so it runs as a plain
function (no datatrove step). It streams: each config's input shards are written one at a time
(`write_config_shards`), and the figures and the card read back only the statistics columns of
the published `traces` shards, one row group at a time, into counters (`TraceStats`), so memory
does not grow with the corpus. The dataset is always assembled locally first, atomically
(`publish_local`); the Hub target then commits that folder, so what was uploaded can be inspected.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq

from schemas import CONFIGS
from stages.base import StageContext
from stages.dataset.shards import ShardInfo, write_config_shards
from stages.dataset.target import DatasetTarget, publish_folder
from stages.funnel import funnel
from stages.publish.card import render_card
from stages.publish.figures import STATS_COLUMNS, TraceStats, write_figures
from stages.shards import row_count, shard_paths


class PublishConfig(DatasetTarget):
    """The publish stage's section: where the corpus goes, and how its shards are cut."""


def _summary(shards: list[ShardInfo]) -> dict:
    return {
        "shards": len(shards),
        "rows": sum(s.rows for s in shards),
        "num_bytes": sum(s.num_bytes for s in shards),
        "download_size": sum(s.file_size for s in shards),
    }


def trace_stats(paths: list[Path]) -> TraceStats:
    """The figures' and card's statistics over published `traces` shards, one row group at a time."""
    stats = TraceStats()
    for path in paths:
        with pq.ParquetFile(path) as file:
            for i in range(file.num_row_groups):
                stats.add(file.read_row_group(i, columns=STATS_COLUMNS))
    return stats


def build(folder: Path, inputs: dict[str, Path], metadata: dict, cfg: PublishConfig) -> dict:
    """Write `data/<config>/*.parquet`, `figures/*.png` and `README.md` into `folder`; per-config summary."""
    unknown = sorted(set(inputs) - set(CONFIGS))
    if unknown:
        raise ValueError(f"unknown configs {unknown}; known: {sorted(CONFIGS)}")
    shards = {
        name: write_config_shards(
            inputs[name],
            name,
            CONFIGS[name],
            folder,
            max_shard_bytes=cfg.max_shard_bytes,
            row_group_bytes=cfg.row_group_bytes,
        )
        for name in CONFIGS
        if name in inputs
    }
    empty = [name for name, parts in shards.items() if not sum(s.rows for s in parts)]
    for name in empty:  # `load_dataset` cannot load a split with no rows: leave the config out
        shutil.rmtree(folder / "data" / name)
        del shards[name]
    traces = trace_stats([s.path for s in shards["traces"]]) if "traces" in shards else None
    figures = write_figures(traces if traces is not None else TraceStats(), folder / "figures")
    rel = {name: path.relative_to(folder).as_posix() for name, path in figures.items()}
    card = render_card(
        metadata,
        shards,
        {name: CONFIGS[name] for name in shards},
        traces,
        rel,
        default_config=cfg.default_config,
        repo_id=cfg.repo_id,
    )
    (folder / "README.md").write_text(card, encoding="utf-8")
    return {name: _summary(parts) for name, parts in shards.items()} | {name: {"skipped": "no rows"} for name in empty}


def publish(inputs: dict[str, Path], metadata: dict, cfg: PublishConfig, out_root: Path) -> dict:
    """Publish the configs in `inputs` (config name -> shard folder, file or table) to `cfg`'s target."""
    build_fn = lambda folder: build(folder, inputs, metadata, cfg)  # noqa: E731
    result = publish_folder(build_fn, cfg, out_root, {"README.md", "data", "figures"})
    return {**result, "configs": result.pop("built")}


def run_publish(ctx: StageContext) -> dict:
    """The pipeline's `publish` stage: every exported config (`ctx.inputs["export"]/<config>/`),
    with the recipe and the run's funnel (as run.json has it) in the card."""
    configs = ctx.inputs["export"]
    inputs = {c: configs / c for c in CONFIGS if (configs / c).is_dir()}
    counts = {c: sum(row_count(p) for p in shard_paths(folder)) for c, folder in inputs.items()}
    recipe = ctx.recipe.model_dump(mode="json") if ctx.recipe is not None else {}
    stages = ctx.summary.get("stages", {})
    metadata = {"recipe": recipe, "stages": stages, "counts": counts, "funnel": funnel(stages)}
    return {"status": "ran", **publish(inputs, metadata, ctx.config, ctx.root)}
