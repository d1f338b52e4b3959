"""Generate stage on real vLLM with the tiny reasoner (one engine for the whole session)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from datasets import load_dataset

from schemas import PROBLEMS, REJECTS, TRACES
from stages.answers import extract_answer, split_thinking
from stages.engine import EngineUnavailable, SamplingConfig
from stages.generate.stage import Generate, GenerateConfig
from stages.problems.stage import ProblemSourceConfig, load_problems
from stages.shards import read_table, shard_paths, write_table

pytestmark = pytest.mark.vllm


def demo_problems(n: int) -> list[dict]:
    return list(load_problems(ProblemSourceConfig(split="demo", limit=n)))


def write_problems(folder, rows, shard_size=100):
    for i in range(0, len(rows), shard_size):
        write_table(
            pa.Table.from_pylist(rows[i : i + shard_size], schema=PROBLEMS.arrow_schema),
            folder / f"problems-{i // shard_size:05d}.parquet",
            PROBLEMS,
        )


def read_all(folder, features):
    tables = [read_table(p, features) for p in shard_paths(folder)]
    return pa.concat_tables(tables).to_pylist() if tables else []


def config(**kw) -> GenerateConfig:
    base = dict(sampling=SamplingConfig(n=4, max_tokens=300, seed=0), store_logprobs=True, chunk_size=4)
    return GenerateConfig(**{**base, **kw})


def test_engine_samples_n4_with_logprobs_some_right_some_wrong(teacher_engine):
    problems = demo_problems(16)
    gens = teacher_engine.generate(
        [teacher_engine.chat_prompt(p["problem"]) for p in problems],
        SamplingConfig(n=4, max_tokens=300, logprobs=5, seed=1),
    )
    right = wrong = 0
    for p, g in zip(problems, gens):
        assert len(g.samples) == 4
        for s in g.samples:
            assert len(s.logprobs) == len(s.token_ids) == len(s.entropies) == len(s.offsets) > 0
            assert all(lp <= 0 for lp in s.logprobs) and all(e >= 0 for e in s.entropies)
            final = extract_answer(split_thinking(s.text).answer)
            right += final == p["answer"]
            wrong += final != p["answer"]
    assert right > 0 and wrong > 0, (right, wrong)


def test_steps_tile_thinking_in_chars_and_tokens_with_their_own_confidence(tmp_path, teacher_engine):
    write_problems(tmp_path / "problems", demo_problems(8))
    Generate(tmp_path / "problems", tmp_path / "traces", config(), engines={"generator": teacher_engine}).run()
    traces = read_all(tmp_path / "traces", TRACES)
    assert len(traces) == 32 and len({t["trace_id"] for t in traces}) == 32
    with_steps = 0
    for t in traces:
        text, offs, lps = t["completion"], t["token_offsets"], np.array(t["token_logprobs"])
        ends = offs[1:] + [len(text)]
        assert "".join(t["thinking"][s["char_start"] : s["char_end"]] for s in t["steps"]) == t["thinking"]
        assert "".join(text[offs[s["token_start"]] : ends[s["token_end"] - 1]] for s in t["steps"]) == t["thinking"]
        for s in t["steps"]:
            own = lps[s["token_start"] : s["token_end"]]
            assert s["mean_logprob"] == pytest.approx(own.mean(), rel=1e-5)
            assert s["min_logprob"] == pytest.approx(own.min(), rel=1e-5)
        with_steps += len(t["steps"]) >= 3
        if t["finish_reason"] == "stop":
            assert t["final_answer"] == extract_answer(t["answer_text"])
    assert with_steps > len(traces) // 2
    ds = load_dataset("parquet", data_files=str(tmp_path / "traces" / "*.parquet"), split="train")
    assert ds.features == TRACES and len(ds) == 32


class Interrupt(RuntimeError):
    pass


def test_kill_and_resume_ends_with_exactly_the_expected_traces(tmp_path, teacher_engine, monkeypatch):
    write_problems(tmp_path / "problems", demo_problems(10), shard_size=5)
    cfg = config(sampling=SamplingConfig(n=2, max_tokens=200, seed=3), chunk_size=2, store_logprobs=False)
    step = Generate(tmp_path / "problems", tmp_path / "traces", cfg, engines={"generator": teacher_engine})
    original, calls = step.process_chunk, {"n": 0}

    def dies_on_third_chunk(rows):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupt("worker killed")
        return original(rows)

    monkeypatch.setattr(step, "process_chunk", dies_on_third_chunk)
    with pytest.raises(Interrupt):
        step.run()
    assert len(shard_paths(tmp_path / "traces")) == 2
    resumed = Generate(tmp_path / "problems", tmp_path / "traces", cfg, engines={"generator": teacher_engine})
    assert len(resumed.pending()) == 4  # 6 chunks in all (two shards of 5 rows, chunks of 2), 2 done
    resumed.run()
    fresh = Generate(tmp_path / "problems", tmp_path / "fresh", cfg, engines={"generator": teacher_engine})
    fresh.run()
    got = [t["trace_id"] for t in read_all(tmp_path / "traces", TRACES)]
    want = [t["trace_id"] for t in read_all(tmp_path / "fresh", TRACES)]
    assert len(got) == len(set(got)) == 20 and sorted(got) == sorted(want)


class FailingEngine:
    """The real engine, except that a prompt containing EXPLODE makes generation raise."""

    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, prompts, sampling, seeds=None):
        if any("EXPLODE" in p for p in prompts):
            raise RuntimeError("engine failed on this request")
        return self._engine.generate(prompts, sampling, seeds)


def test_bad_problems_are_rejected_with_reasons_and_good_rows_complete(tmp_path, teacher_engine):
    good = demo_problems(3)
    bad = [
        {**good[0], "problem_id": "empty", "problem": "   "},
        {**good[0], "problem_id": "no-answer", "answer": None},
        {**good[0], "problem_id": "too-long", "problem": "What is " + " + ".join(["12"] * 200) + "?"},
        {**good[0], "problem_id": "bytes", "problem": b"What is 2 \xff+ 3?".decode("utf-8", errors="replace")},
        {**good[0], "problem_id": "explodes", "problem": "What is 1 + EXPLODE?"},
    ]
    write_problems(tmp_path / "problems", good[:2] + bad + good[2:])
    engine = FailingEngine(teacher_engine)
    step = Generate(tmp_path / "problems", tmp_path / "traces", config(chunk_size=16), engines={"generator": engine})
    step.run()
    rejects = {r["row_id"]: r["reason"] for r in read_all(tmp_path / "traces_rejects", REJECTS)}
    assert rejects == {
        "empty": "empty_problem",
        "no-answer": "missing_answer",
        "too-long": "prompt_too_long",
        "bytes": "invalid_utf8",
        "explodes": "generation_error",
    }
    traces = read_all(tmp_path / "traces", TRACES)
    assert sorted({t["problem_id"] for t in traces}) == sorted(p["problem_id"] for p in good)
    assert step.stats["rejected_prompt_too_long"].total == 1 and step.stats["rows_out"].total == 12


class DyingEngine(FailingEngine):
    """The real engine until its second call, which finds the engine dead (as vLLM's
    EngineDeadError is raised once the engine core process is killed)."""

    calls = 0

    def generate(self, prompts, sampling, seeds=None):
        self.calls += 1
        if self.calls == 2:
            raise EngineUnavailable("engine core died")
        return self._engine.generate(prompts, sampling, seeds)


class BrokenEngine(FailingEngine):
    """Alive, but every call raises (as when a stale torch kernel cache fails each compile)."""

    def generate(self, prompts, sampling, seeds=None):
        raise RuntimeError("CppCompileError: C++ compile error")


def test_an_engine_failing_every_prompt_fails_the_chunk_instead_of_rejecting_it(tmp_path, teacher_engine):
    write_problems(tmp_path / "problems", demo_problems(3))
    cfg = config(sampling=SamplingConfig(n=2, max_tokens=120, seed=1), chunk_size=3, store_logprobs=False)
    with pytest.raises(EngineUnavailable, match="every prompt of the chunk failed alone: RuntimeError: CppCompile"):
        broken = {"generator": BrokenEngine(teacher_engine)}
        Generate(tmp_path / "problems", tmp_path / "traces", cfg, engines=broken).run()
    assert not shard_paths(tmp_path / "traces") and not read_all(tmp_path / "traces_rejects", REJECTS)


def test_a_dead_engine_fails_the_stage_without_rejecting_rows_and_the_rerun_completes(tmp_path, teacher_engine):
    write_problems(tmp_path / "problems", demo_problems(6))
    cfg = config(sampling=SamplingConfig(n=2, max_tokens=120, seed=1), chunk_size=2, store_logprobs=False)
    dying = {"generator": DyingEngine(teacher_engine)}
    step = Generate(tmp_path / "problems", tmp_path / "traces", cfg, engines=dying)
    with pytest.raises(EngineUnavailable):
        step.run()
    assert len(shard_paths(tmp_path / "traces")) == 1  # the chunk in flight is not written...
    assert not read_all(tmp_path / "traces_rejects", REJECTS)  # ...and its problems are not rejected
    Generate(tmp_path / "problems", tmp_path / "traces", cfg, engines={"generator": teacher_engine}).run()
    traces = read_all(tmp_path / "traces", TRACES)
    ids = [t["trace_id"] for t in traces]
    assert len(ids) == len(set(ids)) == 12
    assert {t["problem_id"] for t in traces} == {p["problem_id"] for p in demo_problems(6)}
