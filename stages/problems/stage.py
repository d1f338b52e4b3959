"""The `problems` stage: problems from a source, written into `problems` shards of a fixed size.

The sources are the bundled arithmetic generator (`stages.arithmetic`) and Hugging Face datasets
by name; both yield plain dicts of the `problems` schema, so every downstream stage sees one format.

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

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from loguru import logger
from pydantic import Field

from schemas import PROBLEMS, REJECTS
from schemas.problems import problem_id_for
from stages.accounting import reject_counts
from stages.arithmetic.problems import generate
from stages.arithmetic.trees import Split
from stages.base import StageConfig, StageContext, reject
from stages.decontaminate import CONTAMINATED, DUPLICATE, DecontaminationConfig, decontaminate, remember
from stages.shards import batched, read_table, rejects_dir, row_count, shard_paths, to_table, write_table

STAGE = "problems"


class ProblemSourceConfig(StageConfig):
    """Where problems come from. `kind: arithmetic` is the bundled generator (the embedded
    default); `kind: hub` loads a dataset by name, mapping its columns to ours."""

    kind: Literal["arithmetic", "hub"] = "arithmetic"
    split: str = "demo"  # arithmetic: train | eval | demo; hub: the dataset split
    limit: int = 32
    seed: int = 0
    dataset: str | None = None  # hub: e.g. "HuggingFaceH4/MATH-500"
    config_name: str | None = None
    problem_column: str = "problem"
    answer_column: str = "answer"
    meta_columns: list[str] = []
    # Problems per shard. A shard is what one executor rank takes (all of a problem's traces stay
    # in the shards made from it), so with several workers give each at least one shard.
    shard_size: int = Field(1000, ge=1)
    # Benchmarks to drop overlapping problems against, and exact duplicates (`stages.decontaminate`).
    # Unset: the defaults for a Hub source; off for the bundled generator, whose problems come
    # from no benchmark (a recipe names its arithmetic splits: `benchmarks: ["arithmetic:eval"]`).
    decontaminate: DecontaminationConfig | None = None

    def decontamination(self) -> DecontaminationConfig:
        """The decontamination in effect: the section, else the default for this kind of source."""
        if self.decontaminate is not None:
            return self.decontaminate
        return DecontaminationConfig(enabled=self.kind == "hub")


def arithmetic_problems(split: Split, n: int, seed: int = 0) -> Iterator[dict]:
    for p in generate(split, n, seed=seed):
        yield {
            "problem_id": p.problem_id,
            "source": "arithmetic",
            "problem": p.text,
            "answer": str(p.answer),
            "split": split,
            "meta": json.dumps({"expression": p.expression}),
        }


def hub_problems(cfg: ProblemSourceConfig) -> Iterator[dict]:
    """Rows of a Hub dataset (or a local dataset folder) mapped to the `problems` schema.
    Missing columns raise at once, naming what the dataset does have."""
    from datasets import load_dataset

    if not cfg.dataset:
        raise ValueError("problems.dataset is required for kind=hub")
    ds = load_dataset(cfg.dataset, cfg.config_name, split=cfg.split, streaming=True)
    for i, row in enumerate(ds):
        if i >= cfg.limit:
            return
        missing = [c for c in (cfg.problem_column, cfg.answer_column) if c not in row]
        if missing:
            raise KeyError(f"{cfg.dataset}: no column(s) {missing}; columns are {sorted(row)}")
        text = row[cfg.problem_column]
        answer = row[cfg.answer_column]
        yield {
            "problem_id": problem_id_for(cfg.dataset, str(text)),
            "source": cfg.dataset,
            "problem": text if isinstance(text, str) else str(text),
            "answer": None if answer is None else str(answer),
            "split": cfg.split,
            "meta": json.dumps({c: row.get(c) for c in cfg.meta_columns}, default=str),
        }


def load_problems(cfg: ProblemSourceConfig) -> Iterator[dict]:
    if cfg.kind == "arithmetic":
        if cfg.split not in ("train", "eval", "demo"):
            raise ValueError(f"arithmetic split must be train, eval or demo, not {cfg.split!r}")
        return arithmetic_problems(cfg.split, cfg.limit, cfg.seed)  # type: ignore[arg-type]
    return hub_problems(cfg)


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
