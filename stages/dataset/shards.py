"""Deterministic Parquet shards for one published config, streamed with bounded memory.

Why each choice (row order, cutting by size and column encodings are in `layout`):
- inputs are streamed (tables as given, then shard files in path order): a file is read to cut its
  rows into row groups, dropped, and read again by the writer thread when its rows are written, so
  memory is about one row group per writer thread plus one input shard, never the corpus;
- cast to the config's declared Features first, so readers see exactly the published schema
  (`string`, never `large_string`) and the file carries the `huggingface` features metadata;
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
import math
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features

from schemas import arrow_schema, validate
from stages.dataset.layout import (
    SAMPLE_ROWS,
    Input,
    arrow_nbytes,
    cut,
    encoding_plan,
    head,
    load,
    materialize,
    sort_indices,
)
from stages.shards import shard_paths

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
    schema = arrow_schema(features)
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
                plan = plan or encoding_plan(head(pieces, SAMPLE_ROWS))
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
