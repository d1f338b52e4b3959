"""The `import` stage's recipe section: where existing traces come from and how their columns map."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from stages.base import StageConfig
from stages.decontaminate import DecontaminationConfig
from stages.segment import SegmentConfig
from stages.traces_import.presets import resolve_columns


class TraceSourceConfig(StageConfig):
    """Existing traces: a Hub dataset by name (`dataset`, with `split`, `config_name`,
    `revision`) or local files (`path`: Parquet or JSONL, a glob is fine), read through a
    `preset` column mapping (`stages/traces_import/presets.py`) with `columns` overrides."""

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
