"""Where the inspector's inputs live, for a run folder or a published dataset folder.

A run folder (the `curate` flow's output root) has everything: labeled traces, pairs, frontier
decisions and `run.json` (with the funnel: rows and drops by reason, `stages.funnel`); where each
stage's folder is, the pipeline spec says (`flows/pipeline.py`), and the caller passes it as
`layout` (stage name -> folder). A published dataset folder only has `data/<config>/*.parquet`:
its `traces` config is the labeled-traces table and its `dpo` config carries each pair's
provenance, so the inspector shows what is there and says what is missing. Everything is read
lazily with polars so statistics stay column-wise on large corpora.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

# Columns of the labeled-traces table the inspector never needs (large per-token arrays, raw text).
SKIP_COLUMNS = {"completion", "prompt", "token_logprobs", "token_entropies", "token_offsets", "sampling", "thinking"}


@dataclass
class Sources:
    """Shard lists and metadata of one inspected folder."""

    root: Path
    kind: str  # "run" | "dataset" | "evaluation"
    traces: list[Path]
    pairs: list[Path] = field(default_factory=list)
    pairs_format: str = "pairs"  # "pairs" (run's PAIRS shards) | "dpo" (published dpo config)
    frontier: list[Path] = field(default_factory=list)
    run: dict = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)  # rows per stage folder / published config
    missing: list[str] = field(default_factory=list)  # what this kind of folder cannot show
    evaluation: dict = field(default_factory=dict)  # an evaluation's leaderboard: model -> summary


def _parquet(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith(".")) if folder.is_dir() else []


def _rows(paths: list[Path]) -> int:
    """Row count from Parquet footers only (no data read)."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def _config_rows(data: Path, prefix: str = "") -> dict[str, int]:
    if not data.is_dir():
        return {}
    return {f"{prefix}{d.name}": _rows(_parquet(d)) for d in sorted(data.iterdir()) if d.is_dir()}


def locate(path: Path, layout: dict[str, Path] | None = None) -> Sources:
    """Sources of a run folder (its stage folders under `layout`, stage name -> folder: `label`,
    `pairs`, `frontier` and any others to count rows of) or a published dataset folder; ValueError
    otherwise."""
    root = Path(path).resolve()
    layout = {name: Path(folder) for name, folder in (layout or {}).items()}
    if (root / "leaderboard.json").is_file():
        return _evaluation(root, layout)
    labeled = layout.get("label")
    if labeled is not None and (labeled.is_dir() or (root / "run.json").is_file()):
        traces = _parquet(labeled)
        if not traces:
            raise ValueError(f"{root}: a run folder without labeled traces ({labeled}); has the label stage run?")
        run = json.loads((root / "run.json").read_text()) if (root / "run.json").is_file() else {}
        rows = {folder.name: _rows(_parquet(folder)) for folder in layout.values() if folder.is_dir()}
        published = ((run.get("stages") or {}).get("publish") or {}).get("path")
        rows |= _config_rows(Path(published) / "data", "dataset/") if published else {}
        pairs, frontier = (_parquet(layout[k]) if k in layout else [] for k in ("pairs", "frontier"))
        return Sources(root, "run", traces, pairs, "pairs", frontier, run, rows)
    data = root / "data"
    if (data / "traces").is_dir():
        return Sources(
            root,
            "dataset",
            _parquet(data / "traces"),
            _parquet(data / "dpo"),
            "dpo",
            rows=_config_rows(data, "dataset/"),
            missing=["run.json stage stats and funnel", "frontier decisions", "pairs outside the dpo config"],
        )
    raise ValueError(f"{root}: neither a run folder (labeled traces, run.json) nor a published dataset (data/traces/)")


def _evaluation(root: Path, layout: dict[str, Path]) -> Sources:
    """An `evaluate` flow's output: one run folder per model, `layout` relative to each of them."""
    board = json.loads((root / "leaderboard.json").read_text())
    models = sorted(d for d in root.iterdir() if (d / "run.json").is_file())
    traces = [p for d in models for p in _parquet(d / layout["label"])] if "label" in layout else []
    if not traces:
        raise ValueError(f"{root}: an evaluation folder without labeled traces under its models' folders")
    rows = {f"{d.name}/{name}": _rows(_parquet(d / folder)) for d in models for name, folder in layout.items()}
    missing = ["pairs", "frontier decisions", "per-stage run statistics (see each model's run.json)"]
    return Sources(root, "evaluation", traces, rows=rows, missing=missing, evaluation=board)


def scan_traces(src: Sources) -> pl.LazyFrame:
    """The labeled traces, without the columns the inspector never shows."""
    names = pq.read_schema(src.traces[0]).names
    return pl.scan_parquet(src.traces).select([n for n in names if n not in SKIP_COLUMNS])


def scan_pairs(src: Sources) -> pl.LazyFrame | None:
    """Pairs in one shape for both folder kinds, with the trace ids parsed from provenance:
    `trace` (the trace a step pair branches from), `chosen_trace`, `rejected_trace`, `step`."""
    if not src.pairs:
        return None
    lf = pl.scan_parquet(src.pairs)
    if src.pairs_format == "dpo":
        prov = pl.col("provenance")
        lf = lf.select(
            "pair_id",
            "kind",
            prov.str.json_path_match("$.source").alias("source"),
            "margin",
            pl.lit("").alias("prefix"),  # a dpo row's sides are whole messages
            pl.col("chosen").list.last().struct.field("content").alias("chosen"),
            pl.col("rejected").list.last().struct.field("content").alias("rejected"),
            prov.str.json_path_match("$.chosen_confidence").cast(pl.Float32, strict=False).alias("chosen_confidence"),
            prov.str.json_path_match("$.rejected_confidence")
            .cast(pl.Float32, strict=False)
            .alias("rejected_confidence"),
            "provenance",
        )
    else:
        lf = lf.select(
            "pair_id",
            "kind",
            "source",
            "margin",
            "prefix",
            "chosen",
            "rejected",
            "chosen_confidence",
            "rejected_confidence",
            "provenance",
        )
    prov = pl.col("provenance")
    return lf.with_columns(
        prov.str.json_path_match("$.trace").alias("trace"),
        prov.str.json_path_match("$.chosen_trace").alias("chosen_trace"),
        prov.str.json_path_match("$.rejected_trace").alias("rejected_trace"),
        prov.str.json_path_match("$.step").cast(pl.Int32, strict=False).alias("step"),
    ).drop("provenance")


def scan_frontier(src: Sources) -> pl.LazyFrame | None:
    if not src.frontier:
        return None
    return pl.scan_parquet(src.frontier).select("trace_id", "keep", "drop_reason", "pass_rate", "ifd")


def with_frontier(lf: pl.LazyFrame, frontier: pl.LazyFrame | None) -> pl.LazyFrame:
    """The traces with their frontier decision (`keep`, `drop_reason`, `pass_rate`, `ifd`; null
    where the folder has none), so filters and the page read one table."""
    if frontier is None:
        kinds = {"keep": pl.Boolean, "drop_reason": pl.String, "pass_rate": pl.Float32, "ifd": pl.Float32}
        return lf.with_columns(pl.lit(None, dtype).alias(name) for name, dtype in kinds.items())
    return lf.join(frontier, on="trace_id", how="left")
