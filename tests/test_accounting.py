"""Accounting without engines: a stage's figures live beside its shards and sum to the whole of its
work whether it ran at once, was killed and resumed, or is skipped; the card shows run.json's funnel."""

from __future__ import annotations

import errno
import os

import pyarrow as pa
import pytest
from datasets import Features, Value

from schemas import PROBLEMS
from stages.accounting import stage_totals, stats_path, write_chunk_stats
from stages.base import ShardStage, StageConfig, reject
from stages.funnel import funnel
from stages.publish.card import counts_section
from stages.shards import DiskFullError, write_table

COUNTS = Features({"problem_id": Value("string"), "n": Value("int32")})


class CountConfig(StageConfig):
    chunk_size: int = 3


class Count(ShardStage):
    """Refuses problems whose id ends in 0, counts the characters of the rest as their tokens."""

    name = "count"
    in_features = PROBLEMS
    out_features = COUNTS
    fail_at: int | None = None  # raise on this process_chunk call (1-based): a killed run
    calls = 0

    def process_chunk(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        type(self).calls += 1
        if type(self).calls == self.fail_at:
            raise RuntimeError("injected failure")
        bad = [r for r in rows if r["problem_id"].endswith("0")]
        good = [r for r in rows if not r["problem_id"].endswith("0")]
        self.stat_update("tokens_generated", value=sum(len(r["problem"]) for r in good))
        return [{"problem_id": r["problem_id"], "n": len(r["problem"])} for r in good], [
            reject(r["problem_id"], self.name, "ends_in_zero", "", r) for r in bad
        ]


@pytest.fixture
def problems(tmp_path):
    rows = [
        {"problem_id": f"p{i:02d}", "source": "t", "problem": "x" * (i + 1), "answer": "1", "split": "t", "meta": "{}"}
        for i in range(11)
    ]
    folder = tmp_path / "problems"
    write_table(pa.Table.from_pylist(rows[:7]), folder / "problems-00000.parquet", PROBLEMS)
    write_table(pa.Table.from_pylist(rows[7:]), folder / "problems-00001.parquet", PROBLEMS)
    return folder


def test_a_killed_and_resumed_stage_sums_to_an_uninterrupted_one(problems, tmp_path, monkeypatch):
    whole = Count(problems, tmp_path / "whole", CountConfig())
    whole.run()
    expected = stage_totals(tmp_path / "whole")
    assert expected["rows_in"] == 11 and expected["rows_out"] == 9 and expected["rejected_ends_in_zero"] == 2
    assert expected["tokens_generated"] == sum(range(1, 12)) - 1 - 11 and expected["chunks"] == 5

    monkeypatch.setattr(Count, "fail_at", 3)
    monkeypatch.setattr(Count, "calls", 0)
    killed = Count(problems, tmp_path / "killed", CountConfig())
    with pytest.raises(RuntimeError, match="injected"):
        killed.run()
    assert stage_totals(tmp_path / "killed")["chunks"] == 2
    # a chunk killed after its figures were written but before its shard: they count for nothing
    half_done = tmp_path / "killed" / "problems-00001-00000.parquet"
    write_chunk_stats(half_done, {"rows_in": 99, "tokens_generated": 99}, 1.0)
    assert stage_totals(tmp_path / "killed")["rows_in"] == 6
    monkeypatch.setattr(Count, "fail_at", None)
    Count(problems, tmp_path / "killed", CountConfig()).run()  # the resume redoes it: replaced, not added
    resumed = stage_totals(tmp_path / "killed")
    assert {k: v for k, v in resumed.items() if k != "compute_seconds"} == {
        k: v for k, v in expected.items() if k != "compute_seconds"
    }
    assert stats_path(half_done).is_file() and not list(stats_path(half_done).parent.glob(".*tmp*"))


def test_the_card_shows_the_funnel_with_each_drop_once():
    stages = {
        "problems": {"rows_out": 10, "rejected_duplicate_problem": 2},
        "generate": {"rows_in": 10, "rows_out": 36, "rejected_missing_answer": 1, "rejected_pruned:deepconf": 4}
        | {"tokens_generated": 900, "tokens_pruned": 100},
        "label": {"rows_in": 36, "rows_out": 36, "judge_tokens": 50, "mc_tokens": 70},
        "pairs": {"pairs_candidates": 40, "dropped_duplicate": 5, "dropped_per_problem_cap": 7, "rows_out": 28},
        "frontier": {"rows_in": 36, "rows_out": 36, "kept": 30, "dropped_pass_rate_too_high": 6},
        "export": {"configs": {"sft": 9, "dpo": 20}, "pairs_in": 28, "dropped_pairs_outside_frontier": 8},
    }
    f = funnel(stages)
    assert [(s["step"], s["n"]) for s in f["traces"]] == [
        ("problems", 10),
        ("traces", 36),
        ("labeled", 36),
        ("kept", 30),
    ]
    assert [(s["step"], s["n"]) for s in f["pairs"]] == [
        ("candidates", 40),
        ("deduplicated", 35),
        ("capped", 28),
        ("exported (dpo)", 20),
    ]
    units = {(d["stage"], d["reason"]): (d["n"], d["unit"]) for d in f["drops"]}
    assert units[("generate", "missing_answer")] == (1, "problems")
    assert units[("generate", "pruned:deepconf")] == (4, "traces")
    assert units[("frontier", "pass_rate_too_high")] == (6, "traces") and len(units) == len(f["drops"]) == 7
    assert f["tokens"]["generate"]["total"] == 900 and f["tokens_total"] == 1020  # pruned tokens are generated ones
    card = counts_section({"funnel": f, "counts": {"sft": 9}})
    assert "No drops recorded" not in card
    for d in f["drops"]:
        assert f"| {d['stage']} | {d['reason']} | {d['n']:,} | {d['unit']} |" in card
    assert (
        "| kept | frontier | 30 traces | pass_rate_too_high: 6 traces |" in card and "| generate | 1,000 |" not in card
    )


# The demo recipe cut down to what makes every stage work on two chunks (a few seconds each).
SMALL = {
    "problems.limit": 4,
    "generate.sampling.n": 2,
    "generate.chunk_size": 2,
    "label.rollouts": {"strategy": "binary_search", "k": 2, "max_tokens": 120},
    "pairs.rollouts.k": 2,
    "pairs.next_step.candidates": 2,
    "pairs.next_step.prefixes_per_problem": 1,
    "frontier.samples": 2,
    "executor": {"kind": "local", "tasks": 1, "workers": 1},  # in this process, on the session's engines
}


def run_all(root, recipe) -> dict:
    """Every stage in order as the flow runs them (without Prefect), run.json rewritten after each."""
    from flows.curate import record_stage, run_stage
    from flows.pipeline import PIPELINE

    root.mkdir(parents=True, exist_ok=True)
    summary: dict = {"recipe": recipe.name, "out": str(root), "stages": {}}
    for name in PIPELINE.names:
        record_stage(summary, name, run_stage(PIPELINE, name, recipe, root, summary), root)
    return summary


@pytest.mark.vllm
def test_a_rerun_and_a_killed_run_report_what_one_uninterrupted_run_does(
    tmp_path, monkeypatch, teacher_engine, student_engine, keep_session_engines
):
    import json

    from flows.pipeline import PIPELINE
    from stages import base
    from stages.funnel import markdown
    from stages.generate.stage import Generate
    from stages.report.stage import collect

    recipe = PIPELINE.load("demo", SMALL)
    once = run_all(tmp_path / "once", recipe)
    f = once["funnel"]
    assert [s["step"] for s in f["traces"]] == ["problems", "traces", "labeled", "kept"] and f["traces"][1]["n"] == 8
    assert {"generate", "label", "frontier"} <= set(f["tokens"]) and f["tokens"]["generate"]["total"] > 0

    again = run_all(tmp_path / "once", recipe)  # everything complete: skipped, the same figures
    assert all(again["stages"][n]["status"] == "complete, skipped" for n in ("generate", "label", "pairs", "frontier"))
    assert again["funnel"] == f

    killed, calls = tmp_path / "killed", []
    original = Generate.process_chunk

    def dies_on_second_chunk(self, rows):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("injected: generate killed after one chunk")
        return original(self, rows)

    def dies_writing_second_labeled_shard(table, path, features):
        if path.parent.name == "labeled" and path.name == "problems-00000-00001-00000.parquet":
            raise RuntimeError("injected: label killed after writing a chunk's figures")
        return write_table(table, path, features)

    for target, fault in (
        ((Generate, "process_chunk"), dies_on_second_chunk),
        ((base, "write_table"), dies_writing_second_labeled_shard),
    ):
        with monkeypatch.context() as m, pytest.raises(RuntimeError, match="injected"):
            m.setattr(*target, fault)
            run_all(killed, recipe)
    resumed = run_all(killed, recipe)
    assert resumed["stages"]["label"]["chunks_run"] == 1 and resumed["funnel"] == f

    run = json.loads((killed / "run.json").read_text())
    assert run["funnel"] == f
    assert markdown(f) in (killed / "dataset" / "README.md").read_text()
    assert collect(killed, 10, layout=PIPELINE.inputs_of("report", killed))["overview"]["funnel"] == f


def test_a_full_disk_while_writing_a_chunks_figures_says_so(tmp_path, monkeypatch):
    """A chunk writes its figures before its shard: the disk can fill on either, and both must
    fail with the same clear error (the reliability harness once saw a bare errno 28 here)."""

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match=r"label/\.stats/00000\.json: disk full while writing a chunk's figures"):
        write_chunk_stats(tmp_path / "label" / "00000.parquet", {"rows": 1}, 0.1)
    assert not list((tmp_path / "label" / ".stats").iterdir())  # no temp file left behind
