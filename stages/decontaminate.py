"""Decontamination: drop problems that overlap the benchmarks a corpus will be evaluated on, and
exact duplicates, each with a reason (`contaminated:<benchmark>` naming the matching n-gram, or
`duplicate_problem` naming the first row it repeats).

Texts are normalised with datatrove's `simplify_text` (lowercase, one space between words, no
diacritics) and cut into word n-grams with its `ngrams`, as datatrove's n-gram decontamination does,
with three differences that math needs: numbers are kept (datatrove maps every number to 0, which
makes "What is 3 + 4?" and "What is 5 + 6?" one text); operator symbols (`+ - * / = ^ < > ( ) ! |`)
are kept as words instead of erased with the punctuation (else `3 + 4` and `3 - 4` are one text);
and words are split on spaces, which after `simplify_text` is what a word tokenizer would do
(datatrove's English one needs spaCy). A row is contaminated when one of its n-grams is one of a
benchmark problem's; a text of fewer than n words is its own single n-gram, so short problems
match only whole (after normalisation). Exact duplicates are rows whose normalised text repeats.

Why not datatrove's `NGramsDecontIndexer` / `NGramsDecontFilter`: the indexer loads benchmarks
through lighteval (not a dependency here) and both keep only 64-bit hashes of the n-grams, so a
dropped row could not say which n-gram it matched. The index here maps each n-gram's text to its
benchmark: a few hundred thousand short strings for the default benchmarks, built once per
process and configuration (`benchmark_index`), then a set lookup per n-gram.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from datatrove.utils.text import PUNCTUATION_SET, TextNormConfig, ngrams, simplify_text
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stages.arithmetic.space import split_texts
from stages.base import reject

CONTAMINATED = "contaminated:"  # reason prefix; the benchmark's name follows
DUPLICATE = "duplicate_problem"
ARITHMETIC = "thoughtmill:arithmetic"  # `dataset` of the bundled arithmetic splits
MATH_SYMBOLS = "+-*/=^<>()!|"
# Prose punctuation becomes a space, a math symbol a word of its own ("3+4" reads as "3 + 4").
_PUNCTUATION = str.maketrans(
    {c: " " for c in PUNCTUATION_SET if c not in MATH_SYMBOLS} | {c: f" {c} " for c in MATH_SYMBOLS}
)
_NORM = TextNormConfig(norm_numbers=False, remove_punctuation=False)  # punctuation: `_PUNCTUATION`
# ASCII text has no diacritics: skipping their per-character pass doubles the rows checked per second.
_NORM_ASCII = dataclasses.replace(_NORM, norm_unicode_diacritics=False)


class BenchmarkConfig(BaseModel):
    """A benchmark's problems: a Hub dataset by id (or a local .parquet / .jsonl file or dataset
    folder) and the column holding the problem text."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # frozen: hashable, so loads are cached

    name: str = ""  # in the reason code `contaminated:<name>`; default: the dataset
    dataset: str
    config_name: str | None = None
    split: str = "test"
    column: str = "problem"
    revision: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data):
        if isinstance(data, dict) and not data.get("name") and data.get("dataset"):
            data = {**data, "name": data["dataset"]}
        return data


PRESETS: dict[str, BenchmarkConfig] = {
    "math500": BenchmarkConfig(name="math500", dataset="HuggingFaceH4/MATH-500", split="test"),
    "aime2024": BenchmarkConfig(name="aime2024", dataset="HuggingFaceH4/aime_2024", split="train"),
    # AIME 2025 has no canonical Hub copy: this one (30 problems, a `problem` column) is a choice;
    # name another with a BenchmarkConfig.
    "aime2025": BenchmarkConfig(name="aime2025", dataset="yentinglin/aime_2025", split="train"),
    "gsm8k": BenchmarkConfig(name="gsm8k", dataset="openai/gsm8k", config_name="main", column="question"),
    # Gated on the Hub: the token must have accepted its terms.
    "gpqa": BenchmarkConfig(
        name="gpqa", dataset="Idavidrein/gpqa", config_name="gpqa_diamond", split="train", column="Question"
    ),
    **{
        f"arithmetic:{s}": BenchmarkConfig(name=f"arithmetic:{s}", dataset=ARITHMETIC, split=s)
        for s in ("train", "eval", "demo")
    },
}


class DecontaminationConfig(BaseModel):
    """`problems.decontaminate` (and the trace import's): which benchmarks, the n-gram size, and
    whether exact duplicates are dropped too."""

    model_config = ConfigDict(extra="forbid")

    benchmarks: list[str | BenchmarkConfig] = ["math500", "aime2024", "aime2025", "gsm8k", "gpqa"]
    n_grams: int = Field(8, ge=1)
    dedupe: bool = True
    enabled: bool = True

    @field_validator("benchmarks")
    @classmethod
    def _known(cls, value: list[str | BenchmarkConfig]) -> list[str | BenchmarkConfig]:
        unknown = [b for b in value if isinstance(b, str) and b not in PRESETS]
        if unknown:
            raise ValueError(f"unknown benchmark(s) {unknown}: name one of {sorted(PRESETS)} or give a BenchmarkConfig")
        return value

    def resolved(self) -> tuple[BenchmarkConfig, ...]:
        return tuple(PRESETS[b] if isinstance(b, str) else b for b in self.benchmarks)


def normalise(text: str) -> str:
    text = text.translate(_PUNCTUATION)
    return simplify_text(text, _NORM_ASCII if text.isascii() else _NORM)


def grams(normalised: str, n: int) -> list[str]:
    """The word n-grams of a normalised text; a text of fewer than `n` words is its one n-gram."""
    words = normalised.split(" ") if normalised else []
    if len(words) < n:
        return [normalised] if words else []
    return [" ".join(g) for g in ngrams(words, n)]


def _local_column(path: Path, column: str) -> list:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        if column not in names:
            raise KeyError(f"{path}: no column {column!r}; columns are {sorted(names)}")
        return pq.read_table(path, columns=[column]).column(column).to_pylist()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if rows and column not in rows[0]:
        raise KeyError(f"{path}: no column {column!r}; columns are {sorted(rows[0])}")
    return [r.get(column) for r in rows]


@functools.cache
def benchmark_texts(bench: BenchmarkConfig) -> tuple[str, ...]:
    """A benchmark's problem texts, loaded once per process: the bundled arithmetic split (every
    problem it can hold), a local file, else `datasets.load_dataset` by name (its cache makes a
    later process's load local)."""
    if bench.dataset == ARITHMETIC:
        return tuple(split_texts(bench.split))  # type: ignore[arg-type]
    path = Path(bench.dataset)
    if path.suffix in (".parquet", ".jsonl", ".json") and path.is_file():
        values = _local_column(path, bench.column)
    else:
        from datasets import load_dataset

        ds = load_dataset(bench.dataset, bench.config_name, split=bench.split, revision=bench.revision)
        if bench.column not in ds.column_names:
            raise KeyError(f"{bench.dataset}: no column {bench.column!r}; columns are {sorted(ds.column_names)}")
        values = ds[bench.column]
    return tuple(str(v) for v in values if v is not None)


@functools.cache
def benchmark_index(benchmarks: tuple[BenchmarkConfig, ...], n: int) -> dict[str, str]:
    """n-gram text -> the name of the first benchmark holding it; built once per process."""
    index: dict[str, str] = {}
    for bench in benchmarks:
        for text in benchmark_texts(bench):
            for gram in grams(normalise(text), n):
                index.setdefault(gram, bench.name)
    return index


def text_hash(normalised: str) -> bytes:
    return hashlib.blake2b(normalised.encode("utf-8", "backslashreplace"), digest_size=16).digest()


def _remember(seen: dict | set, key: bytes, row_id: str) -> None:
    if isinstance(seen, dict):
        seen.setdefault(key, row_id)
    else:
        seen.add(key)


def remember(rows: Iterable[dict], seen: dict | set, text_key: str = "problem", id_key: str = "problem_id") -> None:
    """Add rows already kept (e.g. the shards a resumed run finds written) to the duplicate state."""
    for row in rows:
        _remember(seen, text_hash(normalise(row.get(text_key) or "")), str(row.get(id_key) or ""))


def decontaminate(
    rows: Iterable[dict],
    cfg: DecontaminationConfig,
    stage: str,
    text_key: str = "problem",
    id_key: str = "problem_id",
    seen: dict | set | None = None,
) -> tuple[list[dict], list[dict], dict]:
    """(kept rows, reject rows, stats). A row sharing an n-gram with a benchmark is rejected as
    `contaminated:<benchmark>` (detail: the n-gram); else, with `dedupe`, a row whose normalised
    text an earlier row had is rejected as `duplicate_problem` (detail: the first row's id when
    `seen` is a dict, as it is by default). `seen` (normalised-text hash -> first id) carries the
    duplicate state across calls, e.g. shard after shard. Stats: `checked`, `contaminated` (per
    benchmark), `duplicates`."""
    stats: dict = {"checked": 0, "contaminated": {}, "duplicates": 0}
    if not cfg.enabled:
        return list(rows), [], stats
    index = benchmark_index(cfg.resolved(), cfg.n_grams) if cfg.benchmarks else {}
    seen = {} if seen is None else seen
    kept, rejects = [], []
    for row in rows:
        stats["checked"] += 1
        text, row_id = normalise(row.get(text_key) or ""), str(row.get(id_key) or "")
        hit = next((g for g in grams(text, cfg.n_grams) if g in index), None) if index else None
        if hit is not None:
            name = index[hit]
            stats["contaminated"][name] = stats["contaminated"].get(name, 0) + 1
            rejects.append(reject(row_id, stage, CONTAMINATED + name, hit, row))
            continue
        if cfg.dedupe:
            key = text_hash(text)
            if key in seen:
                first = seen[key] if isinstance(seen, dict) else "an earlier row"
                stats["duplicates"] += 1
                rejects.append(reject(row_id, stage, DUPLICATE, f"duplicate of {first}", row))
                continue
            _remember(seen, key, row_id)
        kept.append(row)
    return kept, rejects, stats
