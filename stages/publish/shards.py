"""Deterministic Parquet shards for one published config.

Why each choice:
- cast to the config's declared Features first, so readers see exactly the published schema
  (`string`, never `large_string`) and the file carries the `huggingface` features metadata;
- a stable sort by the config's id column, so the same rows always land in the same order and a
  re-run writes byte-identical files (no spurious Hub commits, cacheable downloads);
- zstd, a page index and content-defined chunking, so readers can skip pages and the Hub's
  Xet storage deduplicates unchanged chunks between versions even when rows shift;
- row groups of ~64 MB and shards of at most 128 MB (uncompressed, ~50-70 MB on disk), which the
  Hub's viewer and `datasets` streaming handle well and which are written in parallel, one thread
  per core; names follow the Hub's `train-00000-of-00002.parquet` pattern.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Features

from schemas import validate
from stages.shards import shard_paths

ID_COLUMNS = ("trace_id", "pair_id")
LONG_TEXT = 64  # mean bytes above which a string column is free text
SAMPLE_ROWS = 1024  # rows (in published order) that decide the column encodings
SAMPLE_VALUES = 65_536  # leaf values per column looked at
DICTIONARY_RATIO = 0.5  # dictionary-encode when fewer distinct values than this fraction
SPLIT = "train"
MAX_SHARD_BYTES = 128_000_000  # uncompressed; ~50-70 MB files: many shards to write in parallel, few enough files
ROW_GROUP_BYTES = 64_000_000

Source = pa.Table | Path | str


@dataclass(frozen=True)
class ShardInfo:
    """One written shard: where, how many rows, and its uncompressed (Arrow) size as `datasets` counts it."""

    path: Path
    rows: int
    num_bytes: int

    @property
    def file_size(self) -> int:
        return self.path.stat().st_size


def shard_name(config: str, index: int, count: int) -> str:
    return f"data/{config}/{SPLIT}-{index:05d}-of-{count:05d}.parquet"


def _as_sources(tables_or_paths: Source | Iterable[Source]) -> list[Source]:
    if isinstance(tables_or_paths, pa.Table | Path | str):
        return [tables_or_paths]
    return list(tables_or_paths)


def _read(source: Source) -> list[pa.Table]:
    if isinstance(source, pa.Table):
        return [source]
    path = Path(source)
    files = shard_paths(path) if path.is_dir() else [path]
    return [pq.read_table(f) for f in files]


def load_config_table(tables_or_paths: Source | Iterable[Source], features: Features, config: str) -> pa.Table:
    """Every input (tables, shard files or shard folders) validated against `features` and concatenated."""
    tables = [validate(t, features, config) for src in _as_sources(tables_or_paths) for t in _read(src)]
    if not tables:
        return features.arrow_schema.empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def sort_indices(table: pa.Table) -> pa.Array | None:
    """Stable row order: by the id column when there is one, else by each row's JSON; None if already sorted."""
    key = next((c for c in ID_COLUMNS if c in table.column_names), None)
    if key is not None:
        ids = table.column(key)
        if ids.null_count == 0 and (len(ids) < 2 or pc.all(pc.less_equal(ids[:-1], ids[1:])).as_py()):
            return None
        return pc.sort_indices(table, sort_keys=[(key, "ascending", "at_end")])
    reprs = pa.array([json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist()], pa.string())
    return pc.sort_indices(reprs)


def plan_shards(num_rows: int, nbytes: int, max_shard_bytes: int) -> list[tuple[int, int]]:
    """(offset, length) per shard: the fewest shards under `max_shard_bytes`, rows spread evenly."""
    if num_rows == 0:
        return [(0, 0)]
    count = max(1, math.ceil(nbytes / max_shard_bytes))
    count = min(count, num_rows)
    base, extra = divmod(num_rows, count)
    spans, offset = [], 0
    for i in range(count):
        length = base + (1 if i < extra else 0)
        spans.append((offset, length))
        offset += length
    return spans


def rows_per_group(num_rows: int, nbytes: int, row_group_bytes: int) -> int:
    if num_rows == 0 or nbytes == 0:
        return max(num_rows, 1)
    return max(1, int(row_group_bytes * num_rows // nbytes))


def _leaves(name: str, typ: pa.DataType, arrays: list[pa.Array]) -> Iterator[tuple[str, pa.DataType, list]]:
    """(Parquet leaf path, leaf type, leaf value arrays) for a column, through lists and structs."""
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        yield from _leaves(f"{name}.list.element", typ.value_type, [a.flatten() for a in arrays])
    elif pa.types.is_struct(typ):
        children = [a.flatten() for a in arrays]  # applies the slice offset, unlike StructArray.field
        for i, field in enumerate(typ):
            yield from _leaves(f"{name}.{field.name}", field.type, [c[i] for c in children])
    else:
        yield name, typ, arrays


def _array_bytes(arr: pa.Array) -> int:
    """Arrow bytes of `arr` in a canonical layout (validity bitmap only when there are nulls, no slack)."""
    n, typ = len(arr), arr.type
    size = (n + 7) // 8 if arr.null_count else 0
    if pa.types.is_list(typ) or pa.types.is_string(typ) or pa.types.is_binary(typ):
        size += 4 * (n + 1)
    if pa.types.is_list(typ):
        return size + _array_bytes(arr.flatten())
    if pa.types.is_struct(typ):
        return size + sum(_array_bytes(child) for child in arr.flatten())
    if pa.types.is_string(typ) or pa.types.is_binary(typ):
        return size + (pc.sum(pc.binary_length(arr)).as_py() or 0)
    return size + (n * typ.bit_width + 7) // 8


def arrow_nbytes(table: pa.Table) -> int:
    """Uncompressed size as `datasets` reports `num_bytes`, independent of how the table sits in memory
    (`Table.nbytes` varies with slicing and spare bitmaps, which would make re-runs write different cards)."""
    return sum(_array_bytes(chunk) for column in table.columns for chunk in column.chunks)


def _values(arrays: list[pa.Array]) -> pa.Array:
    """The first SAMPLE_VALUES leaf values (enough to tell free text and near-unique values apart)."""
    return pa.chunked_array(arrays).slice(0, SAMPLE_VALUES).combine_chunks()


def encoding_plan(sample: pa.Table) -> tuple[list[str], list[str]]:
    """(leaf columns to dictionary-encode, leaf columns to keep statistics for), from a sample of rows.

    Dictionaries pay only for repeated values: log-probabilities, offsets and free text are nearly
    unique, and trying a dictionary in every row group before falling back costs write time. Min/max
    statistics of long free text are truncated and useless for page skipping, so only ids, short
    strings and numbers keep them (they feed the page index). The sample is the first rows in the
    published (sorted) order, so the plan, like the bytes, depends on the rows only.
    """
    dictionary, stats = [], []
    for field in sample.schema:
        for path, typ, arrays in _leaves(field.name, field.type, sample.column(field.name).chunks):
            values = _values(arrays)
            valid = len(values) - values.null_count
            if pa.types.is_string(typ) or pa.types.is_binary(typ):
                total = pc.sum(pc.binary_length(values)).as_py() or 0
                if valid and total / valid > LONG_TEXT:
                    continue
            stats.append(path)
            if pa.types.is_floating(typ) or pa.types.is_boolean(typ) or not valid:
                continue
            if pc.count_distinct(values).as_py() < DICTIONARY_RATIO * valid:
                dictionary.append(path)
    return dictionary, stats


def plan_sample(table: pa.Table, order: pa.Array | None) -> pa.Table:
    return table.slice(0, SAMPLE_ROWS) if order is None else table.take(order.slice(0, SAMPLE_ROWS))


def _row_groups(table: pa.Table, order: pa.Array | None, span: tuple[int, int], group: int) -> Iterator[pa.Table]:
    """The span's row groups in published order, gathered one at a time (the sorted copy never exists whole)."""
    offset, length = span
    for start in range(offset, offset + length, group):
        n = min(group, offset + length - start)
        yield table.slice(start, n) if order is None else table.take(order.slice(start, n))


def write_shard(table: pa.Table, order: pa.Array | None, span: tuple[int, int], group: int, path: Path, plan) -> int:
    """Write rows `span` of `table` (in `order`, if given) atomically, one row group per `group` rows.

    Memory stays at about one sorted row group on top of the input table. Returns the uncompressed
    bytes written.
    """
    dictionary, stats = plan
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    nbytes = 0
    try:
        with pq.ParquetWriter(
            tmp,
            table.schema,
            compression="zstd",
            use_dictionary=dictionary,
            write_statistics=stats,
            write_page_index=True,
            use_content_defined_chunking=True,
        ) as writer:
            for part in _row_groups(table, order, span, group):
                writer.write_table(part, row_group_size=part.num_rows)
                nbytes += arrow_nbytes(part)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return nbytes


def write_config_shards(
    tables_or_paths: Source | Iterable[Source],
    config: str,
    features: Features,
    out_dir: Path,
    *,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    row_group_bytes: int = ROW_GROUP_BYTES,
    workers: int | None = None,
) -> list[ShardInfo]:
    """Write `config`'s rows as `out_dir/data/<config>/train-XXXXX-of-YYYYY.parquet`; stale shards are removed."""
    table = load_config_table(tables_or_paths, features, config)
    order, nbytes = sort_indices(table), arrow_nbytes(table)  # layout-independent: same rows, same plan
    group = rows_per_group(table.num_rows, nbytes, row_group_bytes)
    spans = plan_shards(table.num_rows, nbytes, max_shard_bytes)
    plan = encoding_plan(plan_sample(table, order))
    out_dir = Path(out_dir)
    paths = [out_dir / shard_name(config, i, len(spans)) for i in range(len(spans))]

    def write(i: int) -> ShardInfo:
        return ShardInfo(paths[i], spans[i][1], write_shard(table, order, spans[i], group, paths[i], plan))

    # Shards are independent files and Arrow's Parquet writer releases the GIL, so threads write
    # them on every core at once; the bytes of each shard do not depend on how many run.
    with ThreadPoolExecutor(max_workers=max(1, min(len(spans), workers or os.cpu_count() or 1))) as pool:
        shards = list(pool.map(write, range(len(spans))))
    keep = {s.path.name for s in shards}
    for stale in (out_dir / "data" / config).glob(f"{SPLIT}-*.parquet"):
        if stale.name not in keep:
            stale.unlink()
    return shards
