import json

import datasets
import pyarrow as pa
import pytest

from schemas import PROBLEMS, REJECTS, TRACES, SchemaError, validate
from stages.accounting import reject_counts
from stages.problems import stage as problems_stage
from stages.problems.stage import ProblemSourceConfig, load_problems, run_problems, write_problem_shards
from stages.shards import read_table


def test_problem_shards_round_trip_through_datasets(tmp_path):
    paths = write_problem_shards(ProblemSourceConfig(split="demo", limit=25, shard_size=10), tmp_path)
    assert [p.name for p in paths] == ["problems-00000.parquet", "problems-00001.parquet", "problems-00002.parquet"]
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "*.parquet"), split="train")
    assert ds.features == PROBLEMS and len(ds) == 25
    assert len(set(ds["problem_id"])) == 25 and all(r["answer"].isdigit() for r in ds)


def test_validate_casts_large_strings_and_names_bad_columns():
    t = pa.table({k: pa.array(["x"], pa.large_string()) for k in PROBLEMS})
    assert validate(t, PROBLEMS).schema == PROBLEMS.arrow_schema
    with pytest.raises(SchemaError, match="missing columns"):
        validate(t.drop(["answer"]), PROBLEMS)
    with pytest.raises(SchemaError, match="cannot cast"):
        validate(pa.table({k: [[1]] if k == "problem" else ["x"] for k in PROBLEMS}), PROBLEMS)
    assert "large_string" not in str(TRACES.arrow_schema)


def test_hub_loader_maps_columns_of_a_dataset_by_name(tmp_path):
    folder = tmp_path / "math500"
    folder.mkdir()
    rows = [{"question": f"What is {i} + 1?", "final": str(i + 1), "level": i % 5} for i in range(6)]
    (folder / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = ProblemSourceConfig(
        kind="hub",
        dataset=str(folder),
        split="test",
        limit=4,
        problem_column="question",
        answer_column="final",
        meta_columns=["level"],
    )
    got = list(load_problems(cfg))
    assert [g["answer"] for g in got] == ["1", "2", "3", "4"] and json.loads(got[2]["meta"]) == {"level": 2}
    assert validate(pa.Table.from_pylist(got, schema=PROBLEMS.arrow_schema), PROBLEMS).num_rows == 4
    with pytest.raises(KeyError, match="no column"):
        list(load_problems(cfg.model_copy(update={"answer_column": "solution"})))


def test_a_problem_parquet_cannot_hold_is_refused_with_a_reason_and_the_rest_written(tmp_path, monkeypatch):
    rows = list(load_problems(ProblemSourceConfig(split="demo", limit=5)))
    rows[1] = {**rows[1], "problem": "What is 2 \ud800+ 3?"}  # lone surrogate: not encodable as UTF-8
    rows[3] = {**rows[3], "answer": "\udcff"}
    monkeypatch.setattr(problems_stage, "load_problems", lambda cfg: iter(rows))
    paths = write_problem_shards(ProblemSourceConfig(split="demo", limit=5, shard_size=4), tmp_path / "problems")
    written = [r for p in paths for r in read_table(p, PROBLEMS).to_pylist()]
    assert [r["problem_id"] for r in written] == [rows[i]["problem_id"] for i in (0, 2, 4)]
    rejects = read_table(tmp_path / "problems_rejects" / "problems-00000.parquet", REJECTS).to_pylist()
    assert [(r["row_id"], r["stage"], r["reason"]) for r in rejects] == [
        (rows[i]["problem_id"], "problems", "invalid_utf8") for i in (1, 3)
    ]
    assert "problem text holds lone surrogates" in rejects[0]["detail"] and "answer" in rejects[1]["detail"]
    assert json.loads(rejects[0]["payload"])["problem"] == rows[1]["problem"]  # escaped, reads back the same
    assert not (tmp_path / "problems_rejects" / "problems-00001.parquet").exists()
    assert reject_counts(tmp_path / "problems") == {"rejected_invalid_utf8": 2}


def test_problems_stage_resumes_missing_shards_then_skips_its_source(tmp_path, monkeypatch):
    """Killed after its first shard, the stage writes only the rest; once marked complete, a re-run
    does not read the source again (a Hub dataset would be loaded for nothing)."""
    from stages.base import StageContext

    cfg = ProblemSourceConfig(split="demo", limit=6, shard_size=2)
    ctx = StageContext(tmp_path, cfg, {}, tmp_path / "problems")
    first = write_problem_shards(cfg, ctx.output)
    for path in first[1:]:
        path.unlink()  # as if killed after the first shard
    kept = first[0].stat().st_mtime_ns
    assert run_problems(ctx)["status"] == "ran"
    assert [p.name for p in first] == sorted(p.name for p in ctx.output.glob("*.parquet"))
    assert first[0].stat().st_mtime_ns == kept  # the finished shard was not rewritten
    monkeypatch.setattr(problems_stage, "load_problems", lambda cfg: pytest.fail("the source was read again"))
    assert run_problems(ctx) == {"status": "complete, skipped", "shards": 3, "rows_out": 6}
