"""Reading a trace source row by row: local JSONL or Parquet files, or a Hub dataset streamed.

Rows are never all in memory: JSONL is read line by line, Parquet in record batches, a Hub
dataset with `datasets`' streaming mode. Before any row is yielded, the mapped columns are
checked against the source's columns, so a wrong mapping fails at once with the column's name
and the columns the source has.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from stages.import_.presets import Preset, resolve_columns

if TYPE_CHECKING:  # the section's type only: the stage that holds it imports this module
    from stages.import_.stage import TraceSourceConfig

BATCH_ROWS = 256  # Parquet rows decoded at a time


class MissingColumnError(KeyError):
    """A mapped column the source does not have."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


ROOT = Path(__file__).resolve().parents[2]  # the checkout: a recipe's relative paths work from any directory


def files(path: str) -> list[Path]:
    """The files `path` (a file, a folder of .parquet/.jsonl, or a glob) names, sorted; a
    relative path is taken from the working directory, else from the checkout's root."""
    found: list[Path] = []
    for base in (Path.cwd(), ROOT) if not Path(path).is_absolute() else (Path("/"),):
        p = base / path
        if p.is_dir():
            found = [f for ext in ("*.parquet", "*.jsonl", "*.json") for f in p.glob(ext)]
        else:
            found = [Path(f) for f in glob.glob(str(p))]
        if found:
            break
    if not found:
        raise FileNotFoundError(f"import.path: no Parquet or JSONL files at {path!r}")
    return sorted(found)


def _jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not a JSON object ({exc})") from exc


def _parquet(path: Path) -> Iterator[dict]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        yield from batch.to_pylist()


def _local(cfg: TraceSourceConfig) -> tuple[list[str] | None, Iterator[dict]]:
    paths = files(str(cfg.path))
    parquet = [p for p in paths if p.suffix == ".parquet"]
    names = sorted(set().union(*(pq.read_schema(p).names for p in parquet))) if parquet else None
    rows = chain.from_iterable(_parquet(p) if p.suffix == ".parquet" else _jsonl(p) for p in paths)
    return names, rows


def _hub(cfg: TraceSourceConfig) -> tuple[list[str] | None, Iterator[dict]]:
    from datasets import load_dataset

    ds = load_dataset(cfg.dataset, cfg.config_name, split=cfg.split, revision=cfg.revision, streaming=True)
    return (list(ds.column_names) if ds.column_names else None), iter(ds)


def required(columns: dict[str, str | None], preset: Preset | None, name: str | None) -> dict[str, str]:
    """Source top-level column -> the logical column (or preset) that needs it."""
    if preset is not None and preset.render is not None:
        return {c: f"the {name} preset" for c in preset.reads}
    return {src.split(".", 1)[0]: logical for logical, src in columns.items() if src}


def check_columns(cfg: TraceSourceConfig, present: list[str]) -> None:
    columns, preset = resolve_columns(cfg.preset, cfg.columns)
    if preset is None or preset.render is None:
        if not (columns["problem"] or columns["conversation"]) or not (
            columns["generations"] or columns["conversation"]
        ):
            raise ValueError(
                "import: map `problem` and `generations` (or `conversation`): give a `preset` or `columns`"
            )
    for src, logical in required(columns, preset, cfg.preset).items():
        if src not in present:
            raise MissingColumnError(
                f"{cfg.source_name}: no column {src!r} (mapped to {logical}); "
                f"the source's columns are {sorted(present)}"
            )


def read_rows(cfg: TraceSourceConfig) -> Iterator[dict]:
    """The source's raw rows (at most `limit`), after checking the mapped columns exist."""
    if cfg.dataset is None and cfg.path is None:
        raise ValueError("import: give `dataset` (a Hub dataset id) or `path` (local Parquet or JSONL files)")
    names, rows = _hub(cfg) if cfg.dataset else _local(cfg)
    first = next(rows, None)
    if first is None and names is None:  # an empty JSONL source: nothing to check, nothing to read
        return
    if names is None:  # JSONL, or a streamed dataset without declared features: the first row's keys
        names = sorted(first) if first is not None else []
    check_columns(cfg, names)
    if first is None:
        return
    for i, row in enumerate(chain([first], rows)):
        if cfg.limit is not None and i >= cfg.limit:
            return
        yield row
