"""Import throughput and memory: the 70 real SkyThought traces repeated to 10k and 100k rows.

What is timed is the `import` stage's own work, import + segment: read a Parquet source, map the
SkyThought columns, split each completion at its tags, segment the thinking into steps, extract
answers and write `problems` and `traces` shards (decontamination off: it is its own stage's
cost, and its default benchmarks come from the Hub). Each run is a fresh subprocess, so its
peak RSS (`ru_maxrss`) is the import's alone; the source is streamed, so the peak must not grow
with the corpus: 100k rows within 1.2x of 10k. Throughput is rows per CPU second of the child
(it runs on one core, so that is rows/s/core, and other work on a shared machine does not skew
it) and rows per wall second; 10k is run `repeats` times (median and range), 100k once.

The source repeats the 70 rows with a unique `idx` (mapped as the problem id), so every row is
a new problem and a new trace, as in a real corpus. Parquet's dictionary encoding keeps the
100k-row source small on disk; the traces written (several GB at 100k) are removed after each run.
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from stages.import_.stage import TraceSourceConfig, import_traces

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "thinking_traces_sample.jsonl"
COLUMNS = ("idx", "question", "gt", "code", "score")
MAX_RSS_RATIO = 1.2


def write_source(rows: list[dict], n: int, path: Path, group: int = 1000) -> Path:
    """`n` rows cycling through `rows` with a unique `idx`, written a row group at a time."""
    base = [{k: r[k] for k in COLUMNS} for r in rows]
    schema = pa.Table.from_pylist(base).schema
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for start in range(0, n, group):
            chunk = [base[i % len(base)] | {"idx": i} for i in range(start, min(n, start + group))]
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
    return path


def child(source: str, out: str) -> dict:
    """One import in this process; its counts, wall and CPU seconds and peak RSS."""
    cfg = TraceSourceConfig(
        preset="skythought", path=source, columns={"id": "idx"}, shard_size=1000, decontaminate={"enabled": False}
    )
    wall, cpu = time.perf_counter(), time.process_time()
    result = import_traces(cfg, Path(out) / "traces")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"rows": result["rows"], "traces": result["traces"], "wall": wall, "cpu": cpu, "rss": peak}


def run_one(source: Path, work: Path) -> dict:
    out = work / "out"
    cmd = [sys.executable, "-m", "flows.bench.import_bench", "--child", str(source), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode:
        raise RuntimeError(f"import child failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(sizes: tuple[int, int] = (10_000, 100_000), repeats: int = 3, sample: Path = SAMPLE) -> dict:
    if not sample.is_file():
        raise SystemExit(f"bench import: the SkyThought sample is not at {sample}")
    rows = [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]
    small, large = sizes
    work = Path(tempfile.mkdtemp(prefix="thoughtmill-import-bench-"))
    try:
        runs: dict[int, list[dict]] = {}
        for n, times in ((small, repeats), (large, 1)):
            source = write_source(rows, n, work / f"source-{n}.parquet")
            runs[n] = [run_one(source, work) for _ in range(times)]
            for r in runs[n]:
                assert r["rows"] == r["traces"] == n, r
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"import + segment of the {len(rows)} SkyThought traces repeated (one process, one core)")
    print("| rows | runs | rows/s/core (CPU) median [range] | rows/s (wall) median | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- |")
    summary = {}
    for n, rs in runs.items():
        per_cpu = [r["rows"] / r["cpu"] for r in rs]
        per_wall = [r["rows"] / r["wall"] for r in rs]
        rss = max(r["rss"] for r in rs) / 2**20
        summary[n] = {"rows_per_cpu_s": statistics.median(per_cpu), "range": (min(per_cpu), max(per_cpu)),
                      "rows_per_wall_s": statistics.median(per_wall), "peak_rss_mib": rss}  # fmt: skip
        print(f"| {n:,} | {len(rs)} | {statistics.median(per_cpu):,.0f} [{min(per_cpu):,.0f}, {max(per_cpu):,.0f}] "
              f"| {statistics.median(per_wall):,.0f} | {rss:,.0f} |")  # fmt: skip
    ratio = summary[large]["peak_rss_mib"] / summary[small]["peak_rss_mib"]
    verdict = "ok" if ratio <= MAX_RSS_RATIO else "FAIL"
    print(f"peak RSS {large:,} / {small:,} rows: {ratio:.2f}x (goal <= {MAX_RSS_RATIO}x): {verdict}")
    return {"sizes": summary, "rss_ratio": ratio}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3])))
    else:
        main()
