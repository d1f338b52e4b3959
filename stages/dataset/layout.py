"""Where a published config's rows go: their order, their sizes, the row groups and shards they are
cut into, and how each column is encoded. Everything here is decided by the rows alone (files are
read only through the readers `shards` hands in), so it can be tested on tables; `shards` streams
the inputs and writes the files.

Why each choice:
- rows in a fixed order: input shard by input shard, each sorted by the config's id column (a
  global sort would need the whole corpus, or an external sort, for no reader's benefit), so the
  same inputs always land in the same order and a re-run writes byte-identical files (no spurious
  Hub commits, cacheable downloads) whatever order the rows had inside each input shard;
- rows are cut by their Arrow size into row groups and shards: a row group closes before it would
  pass its size and a shard before it would pass its target, so the shard limit holds even where
  the writer's estimate of the total (which sets the target) is off, and a row larger than either
  goes alone. Cuts name rows of an input (pieces), not data, so an input file is read to be cut,
  dropped, and read again only when its rows are written;
- `num_bytes` is counted as if each column were one contiguous array, so the card's sizes do not
  depend on how a table happened to sit in memory;
- column encodings are planned once from the first rows in published order (see `encoding_plan`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ID_COLUMNS = ("trace_id", "pair_id")
LONG_TEXT = 64  # mean bytes above which a string column is free text
SAMPLE_ROWS = 1024  # rows (in published order) that decide the column encodings
SAMPLE_VALUES = 65_536  # leaf values per column looked at
DICTIONARY_RATIO = 0.5  # dictionary-encode when fewer distinct values than this fraction

Input = pa.Table | Callable[[], pa.Table]  # a validated table held in memory, or how to read one from its file
Piece = tuple[Input, pa.Array | None, int, int]  # rows start:stop of an input, in `order` if given


def load(source: Input) -> pa.Table:
    return source if isinstance(source, pa.Table) else source()


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


def head(pieces: list[Piece], n: int) -> pa.Table:
    """The first `n` rows of `pieces` (the sample `encoding_plan` looks at)."""
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
