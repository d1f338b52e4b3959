"""Problem sources: the bundled arithmetic generator and Hugging Face datasets by name.

Both yield plain dicts of the `problems` schema, so every downstream stage sees one format.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from schemas.problems import problem_id_for
from stages.arithmetic.problems import generate
from stages.arithmetic.trees import Split
from stages.base import StageConfig
from stages.decontaminate import DecontaminationConfig


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
