"""Parquet shard I/O shared by every stage: validated on the way in and on the way out.

Writes are atomic (temp file, fsync, rename), so a killed worker never leaves a half-written
shard that a re-run would mistake for finished work, and a full disk fails the write with a clear
`DiskFullError` while every finished shard stays intact. Pages carry CRC checksums that reads
verify: a corrupted shard is reported with its path instead of being read as wrong values.

A shard has one writer at a time (the rank that owns its chunk), so whoever (re)writes it first
removes the temps an earlier, killed writer of the same shard left: no pid is tested, which
holds across hosts on one filesystem. A leftover temp always belongs to an unwritten shard (the
rename is the last step), so the chunk it belongs to is redone and its temps removed.
"""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features

from schemas import SchemaError, arrow_schema, validate

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFullError(OSError):
    """No room left for a shard. Finished shards are intact; free space and re-run to resume."""


def rejects_dir(out: Path) -> Path:
    """Where the rows refused while writing the folder `out` go: `<out>_rejects` beside it."""
    return Path(out).parent / f"{Path(out).name}_rejects"


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (itertools.batched arrives in Python 3.12)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def to_table(rows: Iterable[dict], features: Features) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=arrow_schema(features))


def write_table(table: pa.Table, path: Path, features: Features) -> Path:
    """Validate `table` against `features` and write it atomically to `path` (zstd)."""
    table = validate(table, features, str(path))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with disk_full_is_clear(path, "a shard"):
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_leftover_temps(path)
            pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextmanager
def disk_full_is_clear(path: Path, what: str) -> Iterator[None]:
    """A full disk while writing `what` to `path` raises `DiskFullError`, which says so and that
    a re-run resumes, whichever of a chunk's files (its figures, its shard) hits it first."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL or any(f"[errno {code}]" in str(exc) for code in _FULL):
            raise DiskFullError(
                exc.errno or errno.ENOSPC,
                f"{path}: disk full while writing {what} ({exc.strerror or exc}); finished shards are "
                "intact: free space and re-run to resume",
            ) from exc
        raise


def remove_leftover_temps(path: Path) -> list[str]:
    """Remove the temps beside `path` that earlier writers of `path` left when killed mid-write;
    returns their names. Only `path`'s writer may call it (it would break a live writer's rename)."""
    removed = []
    for stale in Path(path).parent.glob(f".{glob.escape(Path(path).name)}.tmp-*"):
        stale.unlink(missing_ok=True)
        removed.append(stale.name)
    return removed


def read_table(path: Path, features: Features) -> pa.Table:
    """Read one shard and validate it; a corrupt file raises SchemaError naming its path."""
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SchemaError(f"{path}: unreadable Parquet ({exc})") from exc
    return validate(table, features, str(path))


def row_count(path: Path) -> int:
    """Rows in a shard from its Parquet footer alone (cheap: resume checks read no data); a
    corrupt footer raises SchemaError naming the path."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise SchemaError(f"{path}: unreadable Parquet ({exc})") from exc


def shard_paths(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*.parquet") if not p.name.startswith("."))
