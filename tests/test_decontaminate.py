"""Decontamination (`stages.decontaminate`): problems overlapping a benchmark are dropped with the
n-gram they share, exact duplicates once, clean rows kept; wired into the problems stage (resumable)
and the card; the bundled arithmetic splits shown disjoint; a benchmark loaded by Hub name."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from flows.pipeline import load_recipe
from schemas import PROBLEMS, REJECTS
from stages.arithmetic.space import split_texts
from stages.base import StageContext
from stages.decontaminate import (
    BenchmarkConfig,
    DecontaminationConfig,
    benchmark_texts,
    decontaminate,
    grams,
    normalise,
)
from stages.problems import stage as problems_stage
from stages.problems.stage import ProblemSourceConfig, arithmetic_problems, run_problems
from stages.publish.card import decontamination_section
from stages.shards import read_table, rejects_dir, shard_paths

BENCH = [
    "Let $f(x) = 3x^2 - 5x + 2$. Find the sum of all real numbers $x$ such that $f(f(x)) = 2$.",
    "A bag holds 4 red marbles and 7 blue marbles. Two marbles are drawn without replacement; "
    "what is the probability that both are blue?",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Compute 6! / 4!.",  # 6 words: compared whole
]
CLEAN = [
    "Compute the remainder when 7^100 is divided by 13.",
    "A train leaves the station at 3 pm travelling at 60 miles per hour; when does it arrive 150 miles away?",
    "Find the smallest prime number greater than 200 whose digits sum to 10.",
    "Solve for y: 2y + 9 = 31.",
    "The perimeter of a square garden is 36 meters. What is the area of the garden in square meters?",
]


def row(i: int, text: str) -> dict:
    return {
        "problem_id": f"p{i:03d}",
        "source": "corpus",
        "problem": text,
        "answer": "1",
        "split": "train",
        "meta": "{}",
    }


@pytest.fixture
def bench(tmp_path) -> DecontaminationConfig:
    path = tmp_path / "bench.jsonl"
    path.write_text("\n".join(json.dumps({"problem": p, "answer": "x"}) for p in BENCH))
    return DecontaminationConfig(benchmarks=[BenchmarkConfig(name="bench", dataset=str(path))])


def planted() -> tuple[list[dict], dict[str, str]]:
    """A corpus: clean rows, benchmark problems planted verbatim and reworded, one duplicate.
    Returns the rows and each planted row's id -> what it is."""
    texts = {
        "verbatim-0": BENCH[0],
        "verbatim-1": BENCH[1],
        "verbatim-3": BENCH[3],
        "case-punct-space": "  natalia SOLD clips to 48 of her friends in april , and then she sold half as many "
        "clips in may.\n\nhow many clips did Natalia sell altogether in April and May",
        "one-word-changed": BENCH[1].replace("bag", "box"),
        "reworded": "Natalia sold 48 friends clips during April and half that many during May; total clips sold?",
        "short-reworded": "Evaluate 6! / 4!.",
    }
    rows = [row(i, t) for i, t in enumerate(CLEAN)]
    rows += [row(100 + i, t) for i, t in enumerate(texts.values())]
    rows.append(row(200, CLEAN[2].upper()))  # a duplicate of p002 once normalised
    return rows, {f"p{100 + i:03d}": name for i, name in enumerate(texts)}


def test_planted_problems_are_dropped_with_their_ngram_and_clean_rows_kept(bench):
    rows, planted_ids = planted()
    kept, rejects, stats = decontaminate(rows, bench, "problems")
    by_id = {r["row_id"]: r for r in rejects}
    dropped = {planted_ids[i] for i in by_id if i in planted_ids}
    # Verbatim and case / punctuation / whitespace changes match; a changed word leaves other 8-grams
    # intact; a paraphrase shares no 8 words in a row, and a reworded short problem is not whole.
    assert dropped == {"verbatim-0", "verbatim-1", "verbatim-3", "case-punct-space", "one-word-changed"}
    assert {planted_ids[r["problem_id"]] for r in kept if r["problem_id"] in planted_ids} == {
        "reworded",
        "short-reworded",
    }
    for rid, name in planted_ids.items():
        if name in dropped:
            r = by_id[rid]
            assert r["reason"] == "contaminated:bench" and r["stage"] == "problems"
            assert any(r["detail"] in grams(normalise(b), 8) for b in BENCH)  # the shared n-gram itself
            assert json.loads(r["payload"])["problem_id"] == rid
    assert by_id["p102"]["detail"] == "compute 6 ! / 4 !"  # short: the whole text
    assert by_id["p200"]["reason"] == "duplicate_problem" and by_id["p200"]["detail"] == "duplicate of p002"
    assert [r["problem_id"] for r in kept[: len(CLEAN)]] == [f"p{i:03d}" for i in range(len(CLEAN))]
    assert stats == {"checked": len(rows), "contaminated": {"bench": 5}, "duplicates": 1}
    assert len(kept) + len(rejects) == len(rows)
    assert pa.Table.from_pylist(rejects, schema=REJECTS.arrow_schema).num_rows == 6  # fits the schema


def test_short_texts_match_whole_and_state_carries_across_calls(bench):
    cfg = bench
    short = [row(1, "compute 6!/4!"), row(2, "Compute 6! / 4! + 1."), row(3, "First compute 6! / 4!, then add 1.")]
    kept, rejects, _ = decontaminate(short, cfg, "problems")
    # Only a whole match counts: a longer text holding the short problem is kept.
    assert [r["row_id"] for r in rejects] == ["p001"] and [r["problem_id"] for r in kept] == ["p002", "p003"]
    seen: dict = {}
    decontaminate([row(1, CLEAN[0])], cfg, "import", seen=seen)
    _, again, stats = decontaminate([row(9, CLEAN[0] + "  ")], cfg, "import", seen=seen)
    assert again[0]["detail"] == "duplicate of p001" and stats["duplicates"] == 1
    as_set: set = set()  # a plain set also works (the first id is then not known)
    decontaminate([row(1, CLEAN[0])], cfg, "import", seen=as_set)
    assert (
        decontaminate([row(9, CLEAN[0])], cfg, "import", seen=as_set)[1][0]["detail"] == "duplicate of an earlier row"
    )
    off = decontaminate(short + short, cfg.model_copy(update={"enabled": False}), "problems")
    assert off == (short + short, [], {"checked": 0, "contaminated": {}, "duplicates": 0})
    no_dedupe = cfg.model_copy(update={"dedupe": False, "benchmarks": []})
    assert len(decontaminate(short + short, no_dedupe, "problems")[0]) == 6


def test_config_names_presets_and_refuses_unknown_ones(tmp_path):
    assert [b.name for b in DecontaminationConfig().resolved()] == ["math500", "aime2024", "aime2025", "gsm8k", "gpqa"]
    with pytest.raises(ValidationError, match="unknown benchmark"):
        DecontaminationConfig(benchmarks=["mmlu"])
    with pytest.raises(ValidationError):
        DecontaminationConfig(ngrams=8)  # extra keys are errors
    assert BenchmarkConfig(dataset="org/bench").name == "org/bench"
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"question": ["What is 1 + 1?"]}), path)
    assert benchmark_texts(BenchmarkConfig(dataset=str(path), column="question")) == ("What is 1 + 1?",)
    with pytest.raises(KeyError, match="no column 'problem'"):
        benchmark_texts(BenchmarkConfig(dataset=str(path)))
    # Sources: Hub ones decontaminate by default, the bundled generator only when a recipe says so.
    assert ProblemSourceConfig(kind="hub", dataset="x").decontamination().enabled
    assert not ProblemSourceConfig().decontamination().enabled
    assert load_recipe("demo").problems.decontamination().resolved()[0].name == "arithmetic:eval"
    from flows.evaluate import EVALUATION

    assert not any(EVALUATION.load(r).problems.decontamination().enabled for r in ("eval-math500", "eval-demo"))
    assert "math500" not in [b.name for b in load_recipe("math").problems.decontamination().resolved()]


def stage_rows() -> list[dict]:
    rows, _ = planted()
    return rows + [row(300, CLEAN[0].lower())]  # in the last shard: a duplicate of shard 0's p000


def run_stage(tmp_path, bench, folder: str, monkeypatch) -> tuple[StageContext, dict]:
    monkeypatch.setattr(problems_stage, "load_problems", lambda cfg: iter(stage_rows()))
    cfg = ProblemSourceConfig(kind="hub", dataset="corpus", shard_size=4, decontaminate=bench)
    ctx = StageContext(tmp_path, cfg, {}, tmp_path / folder / "problems")
    return ctx, run_problems(ctx)


def folder_rows(out) -> tuple[list, list]:
    problems = [(p.name, read_table(p, PROBLEMS).to_pylist()) for p in shard_paths(out)]
    return problems, [(p.name, read_table(p, REJECTS).to_pylist()) for p in shard_paths(rejects_dir(out))]


def test_problems_stage_drops_to_rejects_and_resumes_identically(tmp_path, bench, monkeypatch):
    ctx, result = run_stage(tmp_path, bench, "whole", monkeypatch)
    expected = {"checked": 14, "contaminated": {"bench": 5}, "duplicates": 2}
    assert result["decontamination"] == expected
    assert result["rejected_contaminated:bench"] == 5 and result["rejected_duplicate_problem"] == 2
    whole = folder_rows(ctx.output)
    kept = [r["problem_id"] for _, rows in whole[0] for r in rows]
    assert len(kept) == 7 and "p300" not in kept and "p000" in kept
    # Killed after the first shard: the rest is written as if it never stopped (p300 duplicates
    # shard 0's p000, which the resumed run only knows from the shard it kept).
    ctx2, _ = run_stage(tmp_path, bench, "killed", monkeypatch)
    for path in shard_paths(ctx2.output) + shard_paths(rejects_dir(ctx2.output)):
        if path.name != "problems-00000.parquet":
            path.unlink()
    (ctx2.output / ".complete").unlink()
    assert run_problems(ctx2)["decontamination"] == expected
    assert folder_rows(ctx2.output) == whole
    again = run_problems(ctx2)
    assert again["status"] == "complete, skipped" and again["decontamination"] == expected


def test_bundled_arithmetic_splits_are_disjoint_from_eval():
    """With the demo recipe's settings no demo or train problem overlaps the eval split. At 8-grams
    2591 demo and 21220 train problems would share one with an eval problem: the 8-11 word
    arithmetic problems differ in their last operands, so that measures templates, not problems."""
    cfg = load_recipe("demo").problems.decontamination()
    sizes = {}
    for split in ("demo", "train"):
        texts = split_texts(split)
        kept, rejects, stats = decontaminate(({"problem": t} for t in texts), cfg, "check")
        sizes[split] = len(texts)
        assert rejects == [] and stats["checked"] == len(texts)
    assert sizes == {"demo": 5038, "train": 40372} and len(split_texts("eval")) == 4844
    drawn = {r["problem"] for r in arithmetic_problems("demo", 48)}  # what the demo recipe writes
    assert drawn <= set(split_texts("demo"))  # the enumeration renders texts as the generator does


def test_a_benchmark_loads_by_hub_name(tmp_path, fake_hub):
    from huggingface_hub import HfApi

    buf = io.BytesIO()
    pq.write_table(pa.table({"problem": BENCH[:2], "answer": ["1", "2"]}), buf)
    api = HfApi()
    api.create_repo("org/bench", repo_type="dataset")
    api.upload_file(
        path_or_fileobj=buf.getvalue(),
        path_in_repo="data/train-00000.parquet",
        repo_id="org/bench",
        repo_type="dataset",
    )
    cfg = DecontaminationConfig(benchmarks=[BenchmarkConfig(dataset="org/bench", split="train", column="problem")])
    _, rejects, stats = decontaminate([row(0, BENCH[1]), row(1, CLEAN[0])], cfg, "problems")
    assert [r["reason"] for r in rejects] == ["contaminated:org/bench"] and stats["checked"] == 2
    assert fake_hub.unknown == []


def test_card_shows_imported_and_decontamination_counts():
    stats = {"checked": 14, "contaminated": {"gsm8k": 2, "math500": 3}, "duplicates": 2}
    meta = {
        "stages": {
            "import": {"imported": {"rows": 10, "traces": 40, "quarantined": 1}, "decontamination": stats},
            "problems": {"status": "ran", "decontamination": stats},
            "generate": {"status": "ran"},
        },
        "recipe": {"problems": {"decontaminate": {"benchmarks": ["math500", "gsm8k"], "n_grams": 8}}},
    }
    text = decontamination_section(meta)
    assert "Imported: 10 rows, 40 traces, 1 quarantined." in text
    assert "| problems | 14 | 5 | gsm8k: 2, math500: 3 | 2 |" in text and "| import | 14 |" in text
    assert decontamination_section({}) == "" and decontamination_section({"stages": {"problems": {}}}) == ""
