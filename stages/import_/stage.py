"""The `import` stage: existing traces in, `problems` and `traces` shards out, as generate writes them.

Source rows are read as a stream and cut into shards of `shard_size` rows; shard i writes
`problems/problems-<i>.parquet` (the problems first seen in it), then
`traces/traces-<i>.parquet`, then its quarantined rows to `traces_rejects/`. The traces shard
is written last: it marks the shard done, so a killed run resumes at the first shard without
one (the ids already written are read back from the finished shards, so nothing repeats). A
`.complete` marker lets a re-run skip the source altogether. Nothing is dropped silently: a row
that cannot become a trace is a quarantine row with a reason code, counted in the result as
`rejected_<reason>`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from loguru import logger
from pydantic import Field, model_validator

from schemas import PROBLEMS, REJECTS, TRACES
from stages.accounting import reject_counts
from stages.base import StageConfig, StageContext
from stages.decontaminate import DecontaminationConfig, remember
from stages.import_.presets import resolve_columns
from stages.import_.rows import RowImporter
from stages.import_.sources import read_rows
from stages.segment import SegmentConfig
from stages.shards import batched, rejects_dir, row_count, shard_paths, to_table, write_table


class TraceSourceConfig(StageConfig):
    """Existing traces: a Hub dataset by name (`dataset`, with `split`, `config_name`,
    `revision`) or local files (`path`: Parquet or JSONL, a glob is fine), read through a
    `preset` column mapping (`presets.py`) with `columns` overrides."""

    preset: str | None = None
    dataset: str | None = None  # a Hub dataset id, read by streaming
    path: str | None = None  # local .parquet / .jsonl file(s); relative paths are from the working directory
    split: str = "train"
    config_name: str | None = None
    revision: str | None = None
    columns: dict[str, str | None] = {}  # logical column -> source column (dotted path), None: absent
    limit: int | None = Field(None, ge=1)  # source rows read at most
    shard_size: int = Field(1000, ge=1)  # source rows per output shard (all of a row's traces stay together)
    model: str | None = None  # recorded in the traces' `model` column; default: the dataset or file name
    # Rendered with the source's user text as the traces' `prompt`: what rollouts and next-step
    # sampling continue from. The default is the raw text; set the model's chat template (e.g.
    # "<|user|>{problem}<|assistant|>") when a stage will continue these traces with a model.
    prompt_template: str = "{problem}"
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    # Imported problems overlapping an evaluation benchmark (or repeating an earlier problem's
    # text under another id) are quarantined with all their traces (`stages/decontaminate.py`).
    decontaminate: DecontaminationConfig = Field(default_factory=DecontaminationConfig)

    @model_validator(mode="after")
    def _checked(self) -> TraceSourceConfig:
        if self.dataset is not None and self.path is not None:
            raise ValueError("import: give one of `dataset` (a Hub dataset id) or `path` (local files), not both")
        resolve_columns(self.preset, self.columns)  # unknown preset or column: an error at load time
        if "{problem}" not in self.prompt_template:
            raise ValueError("import.prompt_template must hold {problem}")
        return self

    @property
    def source_name(self) -> str:
        return self.dataset or str(self.path)

    @property
    def model_name(self) -> str:
        return self.model or self.dataset or Path(str(self.path)).stem


PROBLEMS_FOLDER = "problems"  # beside the traces folder, as the generating pipeline lays a run out


def problems_dir(traces: Path) -> Path:
    return Path(traces).parent / PROBLEMS_FOLDER


def _ids(paths: list[Path], column: str) -> set[str]:
    return {i for p in paths for i in pq.read_table(p, columns=[column]).column(column).to_pylist()}


def _clear_unfinished(traces: Path, problems: Path) -> None:
    """Remove problems and reject shards whose traces shard was never written (a killed run, or
    outputs moved aside as stale): they are rewritten with it."""
    for folder in (problems, rejects_dir(traces)):
        for path in shard_paths(folder):
            if not (traces / f"traces-{path.stem.split('-')[-1]}.parquet").exists():
                path.unlink()


def import_traces(cfg: TraceSourceConfig, out: Path) -> dict:
    """Write the missing shards of `cfg`'s source under `out` (the traces folder); returns counts."""
    out, problems = Path(out), problems_dir(out)
    columns, preset = resolve_columns(cfg.preset, cfg.columns)
    importer = RowImporter(cfg, columns, preset)
    _clear_unfinished(out, problems)
    done = shard_paths(out)
    importer.trace_ids, importer.problem_ids = _ids(done, "trace_id"), _ids(shard_paths(problems), "problem_id")
    for path in shard_paths(problems):  # a resumed run: the problems written count as seen
        remember(pq.read_table(path, columns=["problem", "problem_id"]).to_pylist(), importer.seen_texts)
    rows, shards = 0, 0
    for i, chunk in enumerate(batched(read_rows(cfg), cfg.shard_size)):
        rows, shards = rows + len(chunk), i + 1
        name = f"traces-{i:05d}.parquet"
        if (out / name).exists():
            continue
        new_problems, traces, rejects = [], [], []
        for n, raw in enumerate(chunk, i * cfg.shard_size):
            problem, got, bad = importer.convert(raw, n)
            new_problems += [problem] if problem else []
            traces += got
            rejects += bad
        write_table(to_table(new_problems, PROBLEMS), problems / f"problems-{i:05d}.parquet", PROBLEMS)
        if rejects:
            logger.warning(f"import: {len(rejects)} row(s) of shard {i} quarantined ({rejects[0]['reason']}: "
                           f"{rejects[0]['detail']})")  # fmt: skip
            write_table(to_table(rejects, REJECTS), rejects_dir(out) / name, REJECTS)
        write_table(to_table(traces, TRACES), out / name, TRACES)
    return {
        "rows": rows,
        "traces": sum(row_count(p) for p in shard_paths(out)),
        "quarantined": sum(row_count(p) for p in shard_paths(rejects_dir(out))),
        "problems": sum(row_count(p) for p in shard_paths(problems)),
        "shards": shards,
        "source_marked_correct": importer.source_correct,
        "decontamination": importer.decontamination,
    }


def run_import(ctx: StageContext) -> dict:
    """The relabel pipeline's `import` stage: the missing shards (none once `.complete` marks the
    folder done), with counts and quarantined rows by reason."""
    done = ctx.output / ".complete"
    if done.exists():
        imported = json.loads(done.read_text() or "{}") | {"skipped": True}
    else:
        imported = import_traces(ctx.config, ctx.output)
        done.write_text(json.dumps(imported))
    status = "complete, skipped" if imported.get("skipped") else "ran"
    decontamination = imported.pop("decontamination", {})
    counts = {k: imported.get(k, 0) for k in ("rows", "traces", "quarantined", "problems", "source_marked_correct")}
    return {"status": status, "shards": imported.get("shards", 0), "imported": counts,
            "decontamination": decontamination, "rows_out": counts["traces"], **reject_counts(ctx.output)}  # fmt: skip
