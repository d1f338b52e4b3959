"""Write throughput of the publishing shard writer against a plain `pyarrow.parquet.write_table`.

`write_config_shards` does more than a plain write (cast, stable sort, zstd, page index,
content-defined chunking, sized row groups and shards) and writes its shards in parallel (one
thread per core; the plain writer is one `write_table` call), so this measures the net on a
~200 MB `traces`-config table held in memory. The writers run on the same table, alternating,
repeated, in one process; the median of the per-round publish/plain ratios is reported (goal:
>= 0.8). Two intermediate writers (`zstd`, `zstd+cdc`: a plain write with one option each) show
where the time goes: on text-heavy traces zstd compresses at about 2/3 of snappy's (the plain
default) speed and CDC's rolling hash costs a further ~15%, so the ratio against the same format
(`publish / zstd+cdc`) is printed too; it is what the sort, page index and encoding choices cost.
The synthetic rows are built with vectorised Arrow/NumPy so the bench times the writers only.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import CONFIGS, arrow_schema, validate
from stages.dataset.shards import write_config_shards


def _text_pool(rng: np.random.Generator, chars: int) -> str:
    """Prose-like text: Zipf-distributed words from a 3,000-word pseudo-vocabulary, plus numbers."""
    letters = np.array(list("etaoinshrdlucmfwypvbgkqjxz"))
    vocab = ["".join(rng.choice(letters, size=k)) for k in rng.integers(2, 10, 3000).tolist()]
    vocab += [str(x) for x in rng.integers(0, 10_000, 500).tolist()]
    ranks = np.minimum(rng.zipf(1.2, size=chars // 5), len(vocab)) - 1
    return " ".join(vocab[r] for r in ranks.tolist())


def _strings(rng: np.random.Generator, pool: str, n: int, mean_len: int) -> pa.Array:
    lengths = rng.integers(mean_len // 2, mean_len * 3 // 2, size=n)
    starts = rng.integers(0, len(pool) - lengths.max() - 1, size=n)
    return pa.array([pool[s : s + k] for s, k in zip(starts.tolist(), lengths.tolist())], pa.string())


def _lists(values: pa.Array, n: int, per_row: int) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(np.full(n, per_row))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _filler(rng: np.random.Generator, dtype: pa.DataType, n: int) -> pa.Array:
    if pa.types.is_integer(dtype):
        return pa.array(rng.integers(0, 100, n, dtype=np.int64)).cast(dtype)
    if pa.types.is_string(dtype):
        return pa.array(["x" * 40] * n, pa.string())
    return pa.nulls(n, dtype)


def synthetic_traces(target_bytes: int = 200_000_000, seed: int = 0) -> pa.Table:
    """A `traces`-config (LABELED_TRACES) table of about `target_bytes` uncompressed, rows in random id order."""
    rng = np.random.default_rng(seed)
    pool = _text_pool(rng, 4_000_000)
    steps_per_row, tokens_per_row = 12, 600
    row_bytes = 2 * 3000 + 12 * 240 + 3 * 4 * tokens_per_row + 600
    n = max(1, target_bytes // row_bytes)
    n_steps = n * steps_per_row
    step_fields = {name: pa.array(np.zeros(n_steps, np.int32)) for name in ("index", "char_start", "char_end")}
    step_fields |= {name: pa.array(np.zeros(n_steps, np.int32)) for name in ("token_start", "token_end")}
    step_fields |= {"low_conf_tokens": pa.array(rng.integers(0, 5, n_steps, dtype=np.int32))}
    step_fields |= {"text": _strings(rng, pool, n_steps, 240), "symbolic": pa.array(["unknown"] * n_steps)}
    for name in ("mean_logprob", "min_logprob", "mean_entropy", "mc_value", "info_gain"):
        step_fields[name] = pa.array(-rng.random(n_steps, dtype=np.float32))
    for name in ("mc_label", "judge_label", "label"):
        step_fields[name] = pa.array(rng.random(n_steps) < 0.8)
    step_type = arrow_schema(CONFIGS["traces"]).field("steps").type.value_type
    steps = pa.StructArray.from_arrays([step_fields[f.name] for f in step_type], fields=list(step_type))
    floats = lambda: _lists(pa.array(rng.random(n * tokens_per_row, dtype=np.float32)), n, tokens_per_row)
    ids = pa.array([f"{x:016x}" for x in rng.integers(0, 2**63, n).tolist()])
    columns: dict[str, pa.Array] = {"trace_id": ids, "steps": _lists(steps, n, steps_per_row)}
    columns |= {"token_logprobs": floats(), "token_entropies": floats()}
    offsets = pa.array(np.arange(n * tokens_per_row, dtype=np.int32))
    columns |= {"token_offsets": _lists(offsets, n, tokens_per_row)}
    for name in ("completion", "thinking"):
        columns[name] = _strings(rng, pool, n, 3000)
    for field in arrow_schema(CONFIGS["traces"]):
        if field.name not in columns:
            columns[field.name] = _filler(rng, field.type, n)
    return validate(pa.table(columns), CONFIGS["traces"], "bench")


WRITERS = {
    "plain": lambda table, out: pq.write_table(table, out / "plain.parquet"),
    "zstd": lambda table, out: pq.write_table(table, out / "zstd.parquet", compression="zstd"),
    "zstd+cdc": lambda table, out: pq.write_table(
        table, out / "cdc.parquet", compression="zstd", use_content_defined_chunking=True
    ),
    "publish": lambda table, out: write_config_shards(table, "traces", CONFIGS["traces"], out / "publish"),
}


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_publish(target_bytes: int = 200_000_000, repeats: int = 5) -> dict:
    """MB/s per writer (alternating, `repeats` rounds after one untimed warm-up round), the per-round
    publish/plain ratios and file sizes.

    `zstd` and `zstd+cdc` are plain writes with one option each, to show where the time goes. Dirty
    pages are flushed (`os.sync`, untimed) before each write, so no writer pays for the write-back of
    the one before it.
    """
    table = synthetic_traces(target_bytes)
    mb = table.nbytes / 1e6
    rates: dict[str, list[float]] = {name: [] for name in WRITERS}
    sizes: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="thoughtmill-bench-publish-"))
    try:
        for round_ in range(repeats + 1):
            for name, write in WRITERS.items():
                out = tmp / name
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                os.sync()
                seconds = _seconds(lambda w=write, o=out: w(table, o))
                if round_:  # round 0 warms up allocators and caches
                    rates[name].append(mb / seconds)
                sizes[name] = sum(p.stat().st_size for p in out.rglob("*.parquet")) / 1e6
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratios = [p / q for p, q in zip(rates["publish"], rates["plain"])]
    same_format = [p / q for p, q in zip(rates["publish"], rates["zstd+cdc"])]
    return {
        "rows": table.num_rows,
        "uncompressed_mb": round(mb, 1),
        "mb_s": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "median_mb_s": {k: round(statistics.median(v), 1) for k, v in rates.items()},
        "file_mb": {k: round(v, 1) for k, v in sizes.items()},
        "ratios": [round(r, 3) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 3),
        "median_ratio_same_format": round(statistics.median(same_format), 3),
    }


def main() -> None:
    r = bench_publish()
    print(f"publish bench: {r['rows']} rows, {r['uncompressed_mb']} MB uncompressed (traces config), MB/s per round")
    for name in WRITERS:
        print(f"  {name:9s} {r['mb_s'][name]} MB/s (median {r['median_mb_s'][name]}), file {r['file_mb'][name]} MB")
    print(f"publish/plain throughput ratio per round {r['ratios']}, median {r['median_ratio']} (goal >= 0.8)")
    print(f"publish/(zstd+cdc) median ratio, same compression and chunking: {r['median_ratio_same_format']}")


if __name__ == "__main__":
    main()
