"""A stage's figures live with its outputs: one stats file per output shard, summed on demand.

Each chunk a `ShardStage` writes leaves `<output>/.stats/<shard stem>.json` (rows in and out,
rejects by reason, drops, tokens: every `stat_update` the chunk made), written atomically just
before its shard, whose existence marks the chunk done. Summing the files of the shards that exist
(`stage_totals`) gives the whole of a stage's work whether it ran at once, was killed and resumed,
or is skipped on a re-run: a chunk killed before its shard was written has its file replaced when
it is redone, so nothing counts twice, and a stats file without its shard counts for nothing.
The folder moves with the outputs when they go stale (`flows.fingerprints.claim_outputs`).
The stages that write their shards without a `ShardStage` (problems, import) count the rows they
refused from their reject shards (`reject_counts`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from schemas import REJECTS
from stages.shards import disk_full_is_clear, read_table, rejects_dir, remove_leftover_temps, shard_paths

STATS_DIR = ".stats"  # hidden: every reader of a stage folder lists `*.parquet` only


def stats_path(shard: Path) -> Path:
    """Where the figures of the chunk that wrote `shard` go."""
    return Path(shard).parent / STATS_DIR / f"{Path(shard).stem}.json"


def write_chunk_stats(shard: Path, counts: Mapping[str, float], seconds: float) -> Path:
    """Write the figures of the chunk about to write `shard`, atomically (temp, fsync, rename), so a
    killed writer never leaves half a file that would read as figures."""
    path = stats_path(shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftover_temps(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    body = {"shard": Path(shard).name, "seconds": round(seconds, 3), "stats": dict(sorted(counts.items()))}
    try:
        with disk_full_is_clear(path, "a chunk's figures"):
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(body, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def stage_totals(folder: Path | None) -> dict:
    """The figures of every chunk whose shard exists in `folder`, summed, plus `chunks` (shards),
    `chunks_without_stats` (shards written before stats files existed) and `compute_seconds`
    (time inside the stage's chunk work, summed over every run that did it)."""
    shards = shard_paths(folder) if folder is not None and Path(folder).is_dir() else []
    totals: Counter[str] = Counter()
    seconds, missing = 0.0, 0
    for shard in shards:
        path = stats_path(shard)
        if not path.is_file():
            missing += 1
            continue
        body = json.loads(path.read_text(encoding="utf-8"))
        totals.update(body["stats"])
        seconds += body.get("seconds", 0.0)
    out: dict = {k: _number(v) for k, v in sorted(totals.items())}
    out |= {"chunks": len(shards), "compute_seconds": round(seconds, 2)}
    return out | ({"chunks_without_stats": missing} if missing else {})


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def reject_counts(out: Path) -> dict[str, int]:
    """`rejected_<reason>` counts of the rows refused while writing `out`, as stage stats name them."""
    counts: Counter[str] = Counter()
    for path in shard_paths(rejects_dir(out)):
        counts.update(read_table(path, REJECTS).column("reason").to_pylist())
    return {f"rejected_{reason}": n for reason, n in sorted(counts.items())}
