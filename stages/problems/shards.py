"""Write problems from a source into `problems` shards of a fixed size.

A row Parquet cannot hold (a lone surrogate, e.g. from bytes decoded with `surrogateescape` or a
`\\ud800` JSON escape) would fail its whole shard and with it the run, so it goes to
`problems_rejects/` with a reason code instead, as every stage's refused rows do (`ShardStage`):
same folder naming, reject shard named after its problems shard, same reason codes as Generate's
`check_problem`. Problems that overlap a benchmark, and exact duplicates, go there too
(`contaminated:<benchmark>`, `duplicate_problem`: `stages.decontaminate`, per the section's
`decontaminate`). Everything else is written.

Shards are written in source order and a shard that exists is kept, so a run killed midway
resumes with the missing shards (the sources are deterministic: seeded, or a fixed Hub split).
A `.complete` marker written after the last shard lets a re-run skip the source altogether
(a Hub dataset is not loaded again to find that nothing is missing). A resumed run first reads
the problems of the shards it keeps into the duplicate state, so a duplicate is dropped the same
way whether or not the run was interrupted.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from loguru import logger

from schemas import PROBLEMS, REJECTS
from stages.base import StageContext, reject
from stages.decontaminate import CONTAMINATED, DUPLICATE, decontaminate, remember
from stages.problems.sources import ProblemSourceConfig, load_problems
from stages.shards import batched, read_table, rejects_dir, row_count, shard_paths, to_table, write_table

STAGE = "problems"


def unwritable(row: dict) -> tuple[str, str] | None:
    """(reason, detail) when a text column of `row` cannot be encoded as UTF-8, else None."""
    for column, value in row.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                return "invalid_utf8", f"the {column} text holds lone surrogates (undecodable bytes) at {exc.start}"
    return None


def write_problem_shards(cfg: ProblemSourceConfig, out: Path) -> list[Path]:
    """Write shard i from source rows [i * shard_size, (i + 1) * shard_size), less any refused
    rows, which go to a reject shard of the same name; shards that exist are kept. Returns the
    problems shards."""
    paths, decont, seen = [], cfg.decontamination(), {}
    for i, rows in enumerate(batched(load_problems(cfg), cfg.shard_size)):
        name = f"problems-{i:05d}.parquet"
        if (Path(out) / name).exists():
            if decont.enabled and decont.dedupe:
                remember(read_table(Path(out) / name, PROBLEMS).select(["problem", "problem_id"]).to_pylist(), seen)
            paths.append(Path(out) / name)
            continue
        good, bad = [], []
        for row in rows:
            if refused := unwritable(row):
                bad.append(reject(str(row.get("problem_id") or ""), STAGE, *refused, row=row))
            else:
                good.append(row)
        good, dropped, _ = decontaminate(good, decont, STAGE, seen=seen)
        bad += dropped
        if bad:
            logger.warning(f"{STAGE}: {len(bad)} row(s) of {name} refused ({bad[0]['reason']}: {bad[0]['detail']})")
            write_table(to_table(bad, REJECTS), rejects_dir(out) / name, REJECTS)
        paths.append(write_table(to_table(good, PROBLEMS), Path(out) / name, PROBLEMS))
    return paths


def run_problems(ctx: StageContext) -> dict:
    """The pipeline's `problems` stage: write the missing shards (none once `.complete` marks the
    folder done), report refused rows by reason and, when it is on, the decontamination's counts
    over the whole folder (a resumed run reports the same as an uninterrupted one)."""
    done = ctx.output / ".complete"
    if done.exists():
        result = {"status": "complete, skipped", "shards": len(shard_paths(ctx.output))}
    else:
        result = {"status": "ran", "shards": len(write_problem_shards(ctx.config, ctx.output))}
        done.touch()
    result["rows_out"] = sum(row_count(p) for p in shard_paths(ctx.output))  # from footers, as written
    counts: dict = reject_counts(ctx.output)
    if ctx.config.decontamination().enabled:
        counts["decontamination"] = decontamination_stats(ctx.output, counts)
    return result | counts


def reject_counts(out: Path) -> dict[str, int]:
    """`rejected_<reason>` counts of the rows refused while writing `out`, as stage stats name them."""
    counts: Counter[str] = Counter()
    for path in shard_paths(rejects_dir(out)):
        counts.update(read_table(path, REJECTS).column("reason").to_pylist())
    return {f"rejected_{reason}": n for reason, n in sorted(counts.items())}


def decontamination_stats(out: Path, counts: dict[str, int]) -> dict:
    """`decontaminate`'s stats for the folder `out` as written: `checked` (kept + dropped by it),
    `contaminated` per benchmark, `duplicates`; `counts` is `reject_counts(out)`."""
    prefix = f"rejected_{CONTAMINATED}"
    contaminated = {k.removeprefix(prefix): n for k, n in counts.items() if k.startswith(prefix)}
    duplicates = counts.get(f"rejected_{DUPLICATE}", 0)
    kept = sum(row_count(p) for p in shard_paths(out))
    return {
        "checked": kept + sum(contaminated.values()) + duplicates,
        "contaminated": contaminated,
        "duplicates": duplicates,
    }
