"""Deterministic Parquet shards for one published config, streamed with bounded memory.

Why each choice:
- inputs are streamed (tables as given, then shard files in path order): a file is read to cut its
  rows into row groups, dropped, and read again by the writer thread when its rows are written, so
  memory is about one row group per writer thread plus one input shard, never the corpus;
- cast to the config's declared Features first, so readers see exactly the published schema
  (`string`, never `large_string`) and the file carries the `huggingface` features metadata;
- rows in a fixed order: input shard by input shard, each sorted by the config's id column (a
  global sort would need the whole corpus, or an external sort, for no reader's benefit), so the
  same inputs always land in the same order and a re-run writes byte-identical files (no spurious
  Hub commits, cacheable downloads) whatever order the rows had inside each input shard;
- zstd, a page index and content-defined chunking, so readers can skip pages and the Hub's
  Xet storage deduplicates unchanged chunks between versions even when rows shift;
- row groups of ~64 MB and shards of at most 128 MB (uncompressed, ~50-70 MB on disk), which the
  Hub's viewer and `datasets` streaming handle well. Rows roll over into the next shard at a
  target size: the input's Arrow size (exact for tables, from the Parquet footers for files)
  spread evenly over the fewest shards under the limit, so shards come out about equal and the
  limit holds even where the estimate is off. Shards are written in parallel, one thread per core
  (Arrow's Parquet writer releases the GIL), under temp names renamed `train-00000-of-00002.parquet`
  once the count is known.
"""

from __future__ import annotations

import functools
import json
import math
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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
Input = pa.Table | Callable[[], pa.Table]  # a validated table held in memory, or how to read one from its file
Piece = tuple[Input, pa.Array | None, int, int]  # rows start:stop of an input, in `order` if given


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


def _files(source: Path | str) -> list[Path]:
    path = Path(source)
    return shard_paths(path) if path.is_dir() else [path]


def read_input(path: Path, features: Features, config: str) -> pa.Table:
    return validate(pq.read_table(path), features, f"{config}: {path}")


def inputs(sources: list[Source], features: Features, config: str) -> Iterator[Input]:
    """Every input, in order: tables as given (validated against `features`), then shard files in path
    order, as readers: a file is read when its rows are needed and dropped after, never held."""
    for source in sources:
        if isinstance(source, pa.Table):
            yield validate(source, features, config)
        else:
            for path in _files(source):
                yield functools.partial(read_input, path, features, config)


def load(source: Input) -> pa.Table:
    return source if isinstance(source, pa.Table) else source()


def _footer_bytes(path: Path) -> int:
    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def estimate_nbytes(sources: list[Source]) -> float:
    """Arrow bytes of all inputs without reading them: as held for tables; for files, the footers'
    uncompressed Parquet sizes scaled by the Arrow/Parquet ratio of the first file (the one read)."""
    files = [path for source in sources if not isinstance(source, pa.Table) for path in _files(source)]
    scale = pq.read_table(files[0]).nbytes / max(1, _footer_bytes(files[0])) if files else 1.0
    tables = sum(source.nbytes for source in sources if isinstance(source, pa.Table))
    return tables + scale * sum(_footer_bytes(path) for path in files)


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


def _cum_bytes(arr: pa.Array) -> np.ndarray:
    """Arrow bytes before each of `arr`'s n+1 value boundaries: offsets, data and child values (validity
    bitmaps left out: this is what rows are cut by, not the `num_bytes` accounting, `arrow_nbytes`)."""
    typ, n = arr.type, len(arr)
    if n == 0:
        return np.zeros(1)
    if pa.types.is_list(typ):
        offsets = arr.offsets.to_numpy()  # positions in `arr.values`, which ignores the slice
        if pa.types.is_primitive(typ.value_type):  # fixed width: no per-value array needed
            child = offsets * (typ.value_type.bit_width / 8)
        else:
            child = _cum_bytes(arr.values)[offsets]
        return 4.0 * np.arange(n + 1) + child - child[0]
    if pa.types.is_struct(typ):
        return sum((_cum_bytes(c) for c in arr.flatten()), np.zeros(n + 1))
    if pa.types.is_string(typ) or pa.types.is_binary(typ):
        offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + n + 1]
        return 4.0 * np.arange(n + 1) + (offsets - offsets[0])
    return np.arange(n + 1) * (typ.bit_width / 8)


def row_nbytes(table: pa.Table) -> np.ndarray:
    """Arrow bytes of each row, so rows can be cut into row groups and shards by size."""
    sizes = np.zeros(table.num_rows)
    for column in table.columns:
        if column.num_chunks:
            sizes += np.concatenate([np.diff(_cum_bytes(chunk)) for chunk in column.chunks])
    return sizes


def cut(
    tables: Iterable[tuple[Input, pa.Table, pa.Array | None]], group_bytes: float, shard_bytes: float
) -> Iterator[tuple[int, list[Piece]]]:
    """(shard index, row group) for a stream of (input, its table, order): rows in order, a row group closed
    before it would pass `group_bytes`, a shard before it would pass `shard_bytes`; a row larger than either
    goes alone. Pieces name the input, not the table, so a file's table is dropped once it is cut."""
    shard, shard_rows, shard_used = 0, 0, 0.0
    group: list[Piece] = []
    group_rows, group_used = 0, 0.0
    for source, table, order in tables:
        sizes = row_nbytes(table)
        cum = np.cumsum(sizes if order is None else sizes[order.to_numpy()])
        pos = 0
        while pos < len(cum):
            base = cum[pos - 1] if pos else 0.0
            # first row that would pass each limit (pos when even the next one would)
            j_shard = max(pos, int(np.searchsorted(cum, base + shard_bytes - shard_used, side="right")))
            j_group = max(pos, int(np.searchsorted(cum, base + group_bytes - group_used, side="right")))
            j = min(j_shard, j_group)
            if j == pos:
                if group_rows or (shard_rows and j_shard == pos):  # the next row does not fit: close
                    if group_rows:
                        yield shard, group
                        group, group_rows, group_used = [], 0, 0.0
                    if j_shard == pos and shard_rows:
                        shard, shard_rows, shard_used = shard + 1, 0, 0.0
                    continue
                j = pos + 1
            used = float(cum[j - 1] - base)
            group.append((source, order, pos, j))
            group_rows, group_used = group_rows + j - pos, group_used + used
            shard_rows, shard_used = shard_rows + j - pos, shard_used + used
            pos = j
    if group_rows:
        yield shard, group


def materialize(pieces: list[Piece], pool: pa.MemoryPool | None = None) -> pa.Table:
    """The rows of `pieces` as one table (files read now): slices where the input was in order, else
    gathered (in `pool`)."""
    parts = []
    for source, order, a, b in pieces:
        table = load(source)
        parts.append(
            table.slice(a, b - a) if order is None else pc.take(table, order.slice(a, b - a), memory_pool=pool)
        )
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def _head(pieces: list[Piece], n: int) -> pa.Table:
    out: list[Piece] = []
    for table, order, a, b in pieces:
        if n <= 0:
            break
        out.append((table, order, a, min(b, a + n)))
        n -= out[-1][3] - a
    return materialize(out)


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


def _chunks_bytes(chunks: list[pa.Array], typ: pa.DataType) -> int:
    """Arrow bytes of `chunks` laid out as one array (validity bitmap only when there are nulls, no slack)."""
    n = sum(len(c) for c in chunks)
    if n == 0:
        return 0
    size = (n + 7) // 8 if any(c.null_count for c in chunks) else 0
    if pa.types.is_list(typ) or pa.types.is_string(typ) or pa.types.is_binary(typ):
        size += 4 * (n + 1)
    if pa.types.is_list(typ):
        return size + _chunks_bytes([c.flatten() for c in chunks], typ.value_type)
    if pa.types.is_struct(typ):
        children = [c.flatten() for c in chunks]  # applies the slice offset, unlike StructArray.field
        return size + sum(_chunks_bytes([c[i] for c in children], f.type) for i, f in enumerate(typ))
    if pa.types.is_string(typ) or pa.types.is_binary(typ):
        return size + sum(pc.sum(pc.binary_length(c)).as_py() or 0 for c in chunks)
    return size + (n * typ.bit_width + 7) // 8


def arrow_nbytes(table: pa.Table) -> int:
    """Uncompressed size as `datasets` reports `num_bytes`, as if each column were one contiguous array:
    independent of how the table sits in memory (`Table.nbytes` varies with slicing, chunking and spare
    bitmaps, which would make re-runs write different cards). A row group's bytes read back equal those written."""
    return sum(_chunks_bytes(column.chunks, column.type) for column in table.columns)


def _values(arrays: list[pa.Array]) -> pa.Array:
    """The first SAMPLE_VALUES leaf values (enough to tell free text and near-unique values apart)."""
    return pa.chunked_array(arrays).slice(0, SAMPLE_VALUES).combine_chunks()


def encoding_plan(sample: pa.Table) -> tuple[list[str], list[str]]:
    """(leaf columns to dictionary-encode, leaf columns to keep statistics for), from a sample of rows.

    Dictionaries pay only for repeated values: log-probabilities, offsets and free text are nearly
    unique, and trying a dictionary in every row group before falling back costs write time. Min/max
    statistics of long free text are truncated and useless for page skipping, so only ids, short
    strings and numbers keep them (they feed the page index). The sample is the first rows in the
    published order, so the plan, like the bytes, depends on the rows only.
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


def write_shard(
    groups: queue.Queue,
    path: Path,
    schema: pa.Schema,
    plan,
    done: threading.Semaphore,
    pool: pa.MemoryPool | None = None,
) -> tuple[int, int]:
    """Write the row groups put on `groups` (lists of pieces, None ends) to `path`; (rows, uncompressed bytes).

    Each group's rows are read (or gathered) only now and dropped once written: memory is one row group
    per writer. `done` is released at the end. On an error the queue is still drained to its end (then
    the error is raised), so the producer, which puts every group and then None, never waits on a dead
    writer. The writer and the gathered rows use `pool` (buffers freed and reused many times a second).
    """
    dictionary, stats = plan
    rows = nbytes = 0
    try:
        with pq.ParquetWriter(
            path,
            schema,
            compression="zstd",
            use_dictionary=dictionary,
            write_statistics=stats,
            write_page_index=True,
            use_content_defined_chunking=True,
            memory_pool=pool,
        ) as writer:
            while (pieces := groups.get()) is not None:
                part = materialize(pieces, pool)
                writer.write_table(part, row_group_size=part.num_rows)
                rows, nbytes, part = rows + part.num_rows, nbytes + arrow_nbytes(part), None
    except BaseException:
        while groups.get() is not None:
            pass
        raise
    finally:
        done.release()
    return rows, nbytes


@contextmanager
def input_pool() -> Iterator[pa.MemoryPool]:
    """Read inputs into jemalloc (where pyarrow has it) with no decay delay, for the duration; yield the
    previous default pool, for the writers' own buffers.

    Input tables are freed in whatever order their rows get written, by any thread: mimalloc
    (pyarrow's default) keeps such pages mapped, and RSS climbs row groups above what is live, while
    jemalloc without decay hands them straight back to the OS. The writers' page buffers and gathered
    rows, freed and reallocated many times a second, stay on the previous pool, which reuses them
    instead of faulting pages in afresh (that would cost ~20% write throughput). Buffers free to the
    pool they came from, so switching back is safe."""
    previous = pa.default_memory_pool()
    try:
        pool = pa.jemalloc_memory_pool()
        if previous.backend_name != "jemalloc":  # leave a process that chose jemalloc as it is
            pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:
        yield previous
        return
    pa.set_memory_pool(pool)
    try:
        yield previous
    finally:
        pa.set_memory_pool(previous)


def _tmp(folder: Path, index: int) -> Path:
    return folder / f".{SPLIT}-{index:05d}.parquet.tmp-{os.getpid()}"


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
    with input_pool() as pool:
        return _write_config_shards(
            _as_sources(tables_or_paths),
            config,
            features,
            Path(out_dir),
            max_shard_bytes,
            row_group_bytes,
            workers,
            pool,
        )


def _write_config_shards(
    sources: list[Source],
    config: str,
    features: Features,
    out_dir: Path,
    max_shard_bytes: int,
    row_group_bytes: int,
    workers: int | None,
    pool: pa.MemoryPool,
) -> list[ShardInfo]:
    schema = features.arrow_schema
    estimate = estimate_nbytes(sources)
    count = math.ceil(estimate / max_shard_bytes)  # rows spread evenly over these
    # slack so the last shard's rows never spill into an extra one: a few rows' worth when the size is
    # exact (tables in memory), 5% when it is estimated from Parquet footers
    slack = 1.005 if all(isinstance(s, pa.Table) for s in sources) else 1.05
    target = max_shard_bytes if count <= 1 else min(max_shard_bytes, slack * estimate / count)
    folder = Path(out_dir) / "data" / config
    folder.mkdir(parents=True, exist_ok=True)
    ordered = ((src, t, sort_indices(t)) for src in inputs(sources, features, config) for t in [load(src)])
    futures: list[Future] = []
    groups: queue.Queue | None = None
    writers = max(1, workers or os.cpu_count() or 1)
    shards_open = threading.Semaphore(writers)  # a new shard's writer starts when one finishes
    threads = ThreadPoolExecutor(max_workers=writers)

    def start(shard: int, plan) -> queue.Queue:
        shards_open.acquire()
        q: queue.Queue = queue.Queue()  # groups waiting in it name their rows; they hold no data
        futures.append(threads.submit(write_shard, q, _tmp(folder, shard), schema, plan, shards_open, pool))
        return q

    try:
        plan = None
        for shard, pieces in cut(ordered, row_group_bytes, target):
            if shard == len(futures):  # a new shard: end the previous one, start its writer
                if groups is not None:
                    groups.put(None)
                    groups = None
                plan = plan or encoding_plan(_head(pieces, SAMPLE_ROWS))
                groups = start(shard, plan)
            groups.put(pieces)
        if groups is None and not futures:  # no rows: one empty shard, so the config's schema is still published
            groups = start(0, encoding_plan(schema.empty_table()))
        if groups is not None:
            groups.put(None)
            groups = None
        written = [f.result() for f in futures]
    except BaseException:
        if groups is not None:
            groups.put(None)
        threads.shutdown(wait=True)
        for i in range(len(futures)):
            _tmp(folder, i).unlink(missing_ok=True)
        raise
    threads.shutdown(wait=True)
    shards = []
    for i, (rows, nbytes) in enumerate(written):
        path = Path(out_dir) / shard_name(config, i, len(written))
        os.replace(_tmp(folder, i), path)
        shards.append(ShardInfo(path, rows, nbytes))
    keep = {s.path.name for s in shards}
    for stale in folder.glob(f"{SPLIT}-*.parquet"):
        if stale.name not in keep:
            stale.unlink()
    return shards
