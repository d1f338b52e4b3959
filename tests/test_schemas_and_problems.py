import json

import datasets
import pyarrow as pa
import pytest

from schemas import PROBLEMS, TRACES, SchemaError, validate
from stages.problems.shards import write_problem_shards
from stages.problems.sources import ProblemSourceConfig, load_problems


def test_problem_shards_round_trip_through_datasets(tmp_path):
    paths = write_problem_shards(ProblemSourceConfig(split="demo", limit=25), tmp_path, shard_size=10)
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
