"""`ShardStage`: the one shape every Thoughtmill stage has, as a datatrove `PipelineStep`.

A stage reads validated Parquet shards, processes them in fixed chunks and writes one output
shard per chunk, atomically, named after its input shard and chunk index. A chunk whose output
exists is finished work: a killed worker loses at most the chunk it was on, and a re-run never
duplicates a row. Rows the stage refuses go to a `rejects` shard with a reason code. The chunk's
figures (rows, rejects and drops by reason, tokens: its `stat_update`s) go to a stats file beside
its shard (`stages.accounting`), so a stage's totals cover every run that did its work. A corrupt
input shard does not stop the rest: every readable chunk is done first, then the stage fails
naming each corrupt shard's path (fix or remove it, re-run, and only its chunks run). Subclasses
implement one hook, `process_chunk`, and optionally `setup` (e.g. start an engine, lazily, only
when there is work left).

A stage's recipe section is a `StageConfig`. Stages that use models name them by purpose
(`generator`, `judge`, ...); the section maps each purpose to one of the recipe's model roles
(`roles:`, by default the role named like the purpose), and the stage is handed the engine
config of each (`models`) or a ready engine (`engines`, as tests and benches do).
"""

from __future__ import annotations

import json
import sys
import time
from abc import abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from datasets import Features
from datatrove.pipeline.base import PipelineStep
from loguru import logger
from pydantic import BaseModel, ConfigDict, field_validator
from tqdm import tqdm

from schemas import REJECTS, SchemaError
from stages.accounting import write_chunk_stats
from stages.engine import Engine, EngineConfig
from stages.engine.pool import POOL, in_worker_process
from stages.shards import read_table, rejects_dir, row_count, shard_paths, to_table, write_table

MAX_PAYLOAD = 4096


def reject(row_id: str, stage: str, reason: str, detail: str, row: dict[str, Any] | None = None) -> dict:
    payload = _utf8(json.dumps(row or {}, default=str, ensure_ascii=False))[:MAX_PAYLOAD]
    row_id, detail = _utf8(row_id or ""), _utf8(detail)[:1000]
    return {"row_id": row_id, "stage": stage, "reason": reason, "detail": detail, "payload": payload}


def _utf8(text: str) -> str:
    """`text` with lone surrogates as `\\udXXX` escapes: a reject row must be writable even when the
    row it refuses is not (in the JSON payload the escape even reads back as the same character)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class StageConfig(BaseModel):
    """A stage's recipe section: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid")

    def roles_used(self) -> dict[str, str]:
        """Purpose -> model role, for the models this configuration makes the stage use."""
        return {}

    def engine_roles(self) -> dict[str, str]:
        """The part of `roles_used` served by pipeline engines (vLLM, HTTP); a stage that loads a
        role's weights itself leaves it out, so the flow closes the engines that would crowd it."""
        return self.roles_used()

    @classmethod
    def discovered_modules(cls) -> tuple[str, ...]:
        """The modules the stage loads that no import statement names (a registry's plugins): its
        fingerprint hashes their code too (`flows.pipeline.Stage.modules`)."""
        return ()


class ModelStageConfig(StageConfig):
    """The section of a stage that uses models: `PURPOSES` names what it can use them for."""

    PURPOSES: ClassVar[tuple[str, ...]] = ()
    roles: dict[str, str] = {}  # purpose -> a role of the recipe's `models:` (default: the purpose's name)

    @field_validator("roles")
    @classmethod
    def _known_purposes(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(cls.PURPOSES))
        if unknown:
            raise ValueError(f"unknown model purpose(s) {unknown}; this stage uses {list(cls.PURPOSES)}")
        return value

    def purposes_used(self) -> tuple[str, ...]:
        return self.PURPOSES

    def roles_used(self) -> dict[str, str]:
        return {p: self.roles.get(p, p) for p in self.purposes_used()}


@dataclass
class StageContext:
    """What a stage that runs as a plain function (no shards of its own to resume) is given."""

    root: Path  # the run's output root
    config: Any  # the stage's recipe section
    inputs: dict[str, Path]  # producing stage name -> its output folder
    output: Path | None
    recipe: Any = None  # the whole recipe (publishing records it in the card)
    summary: dict = field(default_factory=dict)  # what the run has reported so far


class ShardStage(PipelineStep):
    type = "Thoughtmill"
    in_features: Features
    out_features: Features
    _chunk_counts: Counter[str] | None = None  # the figures of the chunk being processed

    def __init__(
        self,
        input_dir: str | Path,
        output_dir: str | Path,
        cfg: StageConfig,
        models: Mapping[str, EngineConfig] | None = None,
        engines: Mapping[str, Engine] | None = None,
    ) -> None:
        """`cfg`: the stage's recipe section (with its `chunk_size`, input rows per output shard);
        `models`: purpose -> engine config to open from the process's pool; `engines`: purpose -> a
        ready engine, used as is (a test's or a bench's)."""
        super().__init__()
        self.input_dir, self.output_dir, self.cfg = Path(input_dir), Path(output_dir), cfg
        self.chunk_size: int = cfg.chunk_size
        self.rejects_dir = rejects_dir(self.output_dir)
        self.models, self.engines = dict(models or {}), dict(engines or {})

    def engine(self, purpose: str) -> Engine:
        """The engine for `purpose`: the one handed in, else this process's pooled engine for its
        config (started on first use)."""
        if purpose not in self.engines:
            if purpose not in self.models:
                raise ValueError(f"{self.name}: no model for {purpose!r} (give models={{{purpose!r}: ...}})")
            self.engines[purpose] = POOL.open(self.models[purpose], self.cfg.roles_used().get(purpose))
        return self.engines[purpose]

    def setup(self, rank: int) -> None:
        """Prepare expensive resources; called once per rank, only if a chunk needs work. By
        default, start the engines of the purposes the configuration uses."""
        for purpose in self.cfg.roles_used():
            self.engine(purpose)

    def stat_update(self, *labels: str, value: float = 1, unit: str | None = None) -> None:
        """datatrove's statistics (this process's run), and the current chunk's figures, which are
        written beside its shard (`stages.accounting`) so a run's totals survive resumes."""
        super().stat_update(*labels, value=value, unit=unit)
        if self._chunk_counts is not None:
            for label in labels:
                self._chunk_counts[label] += value

    def teardown(self) -> None:  # noqa: B027 - optional hook
        """Release what `setup` made."""

    @abstractmethod
    def process_chunk(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        """Turn input rows into (output rows, reject rows)."""

    def plan(self, world_size: int = 1, rank: int = 0) -> tuple[list[tuple[Path, int, Path]], dict[Path, str]]:
        """(input shard, chunk index, output path) of every chunk of this rank, and the rank's
        input shards whose Parquet footer is unreadable (path -> error)."""
        out, corrupt = [], {}
        for shard in shard_paths(self.input_dir)[rank::world_size]:
            try:
                n_rows = row_count(shard)
            except SchemaError as exc:
                corrupt[shard] = str(exc)
                logger.error(f"{self.name}: skipping corrupt input shard: {exc}")
                continue
            out += [
                (shard, chunk, self.output_dir / f"{shard.stem}-{chunk:05d}.parquet")
                for chunk in range(max(1, -(-n_rows // self.chunk_size)))
            ]
        return out, corrupt

    def chunks(self, world_size: int = 1, rank: int = 0) -> list[tuple[Path, int, Path]]:
        return self.plan(world_size, rank)[0]

    def pending(self, world_size: int = 1, rank: int = 0) -> list[tuple[Path, int, Path]]:
        """The chunks of this rank whose output does not exist yet (a corrupt input shard counts
        as one pending chunk: its work is not done)."""
        chunks, corrupt = self.plan(world_size, rank)
        return [c for c in chunks if not c[2].exists()] + [(s, -1, self.output_dir) for s in corrupt]

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> None:
        """Do this rank's pending chunks now. Returns nothing (datatrove's executor accepts a
        step that yields no documents), so calling `step.run()` directly does the work."""
        chunks, corrupt = self.plan(world_size, rank)
        todo = [c for c in chunks if not c[2].exists()]
        self.stat_update("chunks_skipped", value=len(chunks) - len(todo))
        if todo:
            self._run_chunks(todo, rank, corrupt)
        if corrupt:
            self.stat_update("corrupt_shards", value=len(corrupt))
            raise SchemaError(f"{self.name}: {len(corrupt)} corrupt input shard(s): " + "; ".join(corrupt.values()))

    def _run_chunks(self, todo: list[tuple[Path, int, Path]], rank: int, corrupt: dict[Path, str]) -> None:
        self.setup(rank)
        try:
            tables: dict[Path, pa.Table | None] = {}
            progress = tqdm(todo, desc=f"{self.name} (rank {rank})", unit="chunk", disable=not sys.stderr.isatty())
            for shard, chunk, out in progress:
                if shard not in tables:
                    try:
                        tables = {shard: read_table(shard, self.in_features)}
                    except SchemaError as exc:  # a bad page: do the other shards, then fail naming it
                        tables, corrupt[shard] = {shard: None}, str(exc)
                        logger.error(f"{self.name}: skipping corrupt input shard: {exc}")
                if (table := tables[shard]) is None:
                    continue
                rows = table.slice(chunk * self.chunk_size, self.chunk_size).to_pylist()
                self._chunk_counts, start = Counter(), time.perf_counter()
                try:
                    with self.track_time(unit="chunk"):
                        outputs, rejects = self.process_chunk(rows)
                    self.stat_update("rows_in", value=len(rows))
                    self.stat_update("rows_out", value=len(outputs))
                    for r in rejects:
                        self.stat_update(f"rejected_{r['reason']}")
                    counts = self._chunk_counts
                finally:
                    self._chunk_counts = None
                # the chunk's figures first, its shard last: the shard marks the chunk (and them) done
                write_chunk_stats(out, counts, time.perf_counter() - start)
                write_table(to_table(rejects, REJECTS), self.rejects_dir / out.name, REJECTS)
                write_table(to_table(outputs, self.out_features), out, self.out_features)
                self.stat_update("chunks_done")
        finally:
            self.teardown()
            if in_worker_process():
                POOL.close()
