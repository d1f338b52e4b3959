"""Bring your own traces: real trace formats imported, then labeled, paired, filtered, published
and trained on as generated traces are; bad sources fail clearly or quarantine rows with a reason.

The real samples live in `../shared/data/` (SkyThought traces with `<|begin_of_thought|>` tags,
PRM800K labeling records); tests that read them skip when the folder is absent.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from flows.curate import run_stage
from flows.pipeline import RELABEL
from schemas import PROBLEMS, REJECTS, TRACES
from schemas.labels import LABELED_TRACES
from stages.base import StageContext
from stages.export.stage import ExportConfig, run_export
from stages.frontier.stage import Frontier, FrontierConfig
from stages.import_.sources import MissingColumnError
from stages.import_.stage import TraceSourceConfig, import_traces, run_import
from stages.label.stage import Label, LabelConfig
from stages.pairs.stage import Pairs, PairsConfig
from stages.publish.stage import PublishConfig, run_publish
from stages.report.stage import build_report
from stages.shards import read_table, rejects_dir, shard_paths, to_table
from stages.train.stage import TrainConfig, train
from stages.verification.verify import verify_answer

SKY, PRM = "thinking_traces_sample.jsonl", "prm800k_sample.jsonl"
OFF = {"enabled": False}  # no benchmark download in tests (the relabel recipe's own check is offline)


def source(cfg: dict) -> TraceSourceConfig:
    return TraceSourceConfig(**{"decontaminate": OFF, **cfg})


def table(folder: Path, features) -> list[dict]:
    paths = shard_paths(folder)
    return pa.concat_tables([read_table(p, features) for p in paths]).to_pylist() if paths else []


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def check_steps_tile(t: dict) -> None:
    """Steps cover the thinking exactly, in order, with null confidences and no token spans."""
    steps, thinking = t["steps"], t["thinking"]
    if not thinking.strip():
        assert steps == []
        return
    assert steps[0]["char_start"] == 0 and steps[-1]["char_end"] == len(thinking)
    assert all(a["char_end"] == b["char_start"] for a, b in zip(steps, steps[1:]))
    assert all(s["text"] == thinking[s["char_start"] : s["char_end"]].strip() for s in steps)
    for s in steps:
        assert s["mean_logprob"] is None and s["min_logprob"] is None and s["mean_entropy"] is None
        assert s["token_start"] == s["token_end"] == -1


@pytest.fixture(scope="module")
def sky(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("sky") / "traces"
    cfg = source({"preset": "skythought", "path": str(shared_data / SKY), "shard_size": 32})
    result = import_traces(cfg, out)
    rows = [json.loads(line) for line in (shared_data / SKY).read_text().splitlines()]
    return out, result, rows


def test_skythought_traces_split_at_their_tags_and_segment(sky, tmp_path):
    out, result, rows = sky
    assert result["rows"] == result["traces"] == 70 and result["quarantined"] == 0 and result["shards"] == 3
    ds = load_dataset("parquet", data_files=str(out / "*.parquet"), split="train", cache_dir=str(tmp_path / "c"))
    assert ds.features == TRACES and len(ds) == 70
    traces = table(out, TRACES)
    closed = 0
    for t, r in zip(traces, rows, strict=True):
        text = r["code"][0]
        assert (t["completion"], t["problem"], t["gold_answer"]) == (text, r["question"], r["gt"])
        body = text.split("<|begin_of_thought|>", 1)[1]
        if "<|end_of_thought|>" in text:
            closed += 1
            assert t["thinking"] == body.split("<|end_of_thought|>", 1)[0] and t["finish_reason"] == "stop"
            assert "<|begin_of_solution|>" in t["answer_text"]
            # the boxed answer inside the solution tags (SkyThought's `pred` is normalised: 45 for 45^\circ)
            assert verify_answer(r["pred"][0], t["final_answer"]), (t["final_answer"], r["pred"])
        else:  # truncated at the token limit: all thinking, no final answer
            assert t["thinking"] == body and t["finish_reason"] == "length" and t["final_answer"] is None
        assert t["thinking_start"] == text.index("<|begin_of_thought|>") + len("<|begin_of_thought|>")
        assert t["answer_confidence"] is None and t["thinking_tokens"] is None and t["answer_tokens"] is None
        assert t["model"] == "thinking_traces_sample" and t["sample_index"] == 0
        check_steps_tile(t)
    assert closed == 43  # SOURCES.md: 24 of AMC23 and 19 of AIME24 close their thinking
    # SkyThought scored 31 correct, one of them truncated (no answer given): 30 verify here
    assert sum(bool(verify_answer(t["gold_answer"], t["final_answer"])) for t in traces) == 30
    assert sum(len(t["steps"]) for t in traces) > 70 * 5
    problems = table(out.parent / "problems", PROBLEMS)
    assert len(problems) == 70 and {p["problem_id"] for p in problems} == {t["problem_id"] for t in traces}
    assert result["source_marked_correct"] == sum(r["score"][0] for r in rows) == 31


def test_trace_ids_are_stable_and_openthoughts_rows_import_the_same(sky, tmp_path):
    out, _, rows = sky
    # the same traces as OpenThoughts / Bespoke-Stratos rows: `conversations` turns, gold in a column
    chat = [
        {
            "system": "Your role as an assistant involves thoroughly exploring questions ...",
            "conversations": [{"from": "user", "value": r["question"]}, {"from": "assistant", "value": r["code"][0]}],
            "gold": r["gt"],
        }
        for r in rows
    ]
    path = jsonl(tmp_path / "openthoughts.jsonl", chat)
    for preset in ("openthoughts", "bespoke"):
        cfg = {"preset": preset, "path": str(path), "columns": {"answer": "gold"}, "model": "thinking_traces_sample"}
        result = import_traces(source(cfg), tmp_path / preset / "traces")
        assert result["traces"] == 70
        got, want = table(tmp_path / preset / "traces", TRACES), table(out, TRACES)
        keys = ("problem", "thinking", "answer_text", "final_answer", "thinking_answer", "steps", "finish_reason")
        assert [{k: t[k] for k in keys} for t in got] == [{k: t[k] for k in keys} for t in want]
    # a second import of the same source: the same ids (a re-run or another machine agrees)
    cfg = {"preset": "openthoughts", "path": str(path), "columns": {"answer": "gold"}, "shard_size": 7}
    import_traces(source(cfg | {"model": "thinking_traces_sample"}), tmp_path / "again" / "traces")
    first = [t["trace_id"] for t in table(tmp_path / "openthoughts" / "traces", TRACES)]
    assert first == [t["trace_id"] for t in table(tmp_path / "again" / "traces", TRACES)] and len(set(first)) == 70


def test_prm800k_records_import_as_solution_traces(shared_data, tmp_path):
    out = tmp_path / "traces"
    result = import_traces(source({"preset": "prm800k", "path": str(shared_data / PRM)}), out)
    assert (result["rows"], result["traces"], result["quarantined"], result["problems"]) == (14, 14, 0, 9)
    records = [json.loads(line) for line in (shared_data / PRM).read_text().splitlines()]
    traces = table(out, TRACES)
    for t, r in zip(traces, records, strict=True):
        q = r["question"]
        assert t["problem"] == q["problem"] and t["gold_answer"] == q["ground_truth_answer"]
        check_steps_tile(t)
        if r["generation"] is not None:  # phase 2: the model's pre-generated solution, step for step
            # (the `# Answer` part, a step of its own or the end of the last one, is the boxed answer)
            steps = [s.partition("# Answer")[0].strip() for s in q["pre_generated_steps"]]
            want = [re.sub(r"\n\s*\n", "\n", s) for s in steps if s]
            assert [s["text"] for s in t["steps"]] == want
            assert t["final_answer"] == q["pre_generated_answer"]
    first = traces[0]  # phase 1, finished: the chosen completions, the human's rewrite where there is one
    assert first["final_answer"] == "29" and first["steps"][1]["text"] == "We have $3p+e=1.24$ and $5p+e=1.82$."
    gave_up = traces[3]  # phase 1, given up: an open thinking, no final answer
    assert gave_up["final_answer"] is None and gave_up["steps"]


def test_chat_messages_with_inline_or_separate_reasoning(tmp_path):
    rows = [
        {
            "messages": [
                {"role": "user", "content": "What is 2 + 3?"},
                {"role": "assistant", "content": "<think>\n2 + 3 = 5\n\nSo it is 5.\n</think>\n\n\\boxed{5}"},
            ],
            "answer": "5",
        },
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is 4 * 2?"},
                {"role": "assistant", "content": "The answer is \\boxed{8}.", "reasoning_content": "4 * 2 = 8"},
            ],
            "answer": 8.0,
        },
    ]
    out = tmp_path / "traces"
    cfg = source(
        {"preset": "messages", "path": str(jsonl(tmp_path / "m.jsonl", rows)), "columns": {"answer": "answer"}}
    )
    assert import_traces(cfg, out)["traces"] == 2
    inline, separate = table(out, TRACES)
    assert inline["thinking"].strip() == "2 + 3 = 5\n\nSo it is 5." and inline["final_answer"] == "5"
    assert [s["text"] for s in inline["steps"]] == ["2 + 3 = 5", "So it is 5."]
    assert separate["problem"] == "What is 4 * 2?" and separate["gold_answer"] == "8"
    assert separate["thinking"].strip() == "4 * 2 = 8" and separate["final_answer"] == "8"
    assert separate["completion"] == "<think>\n4 * 2 = 8\n</think>\n\nThe answer is \\boxed{8}."


def test_hub_dataset_by_name_in_the_openr1_format(shared_data, tmp_path, fake_hub):
    rows = [json.loads(line) for line in (shared_data / SKY).read_text().splitlines()[:6]]
    r1 = pa.table(
        {
            "problem": [r["question"] for r in rows],
            "answer": [r["gt"] for r in rows],
            "generations": [[r["code"][0], "<think>\nshort\n</think>\n\n\\boxed{0}"] for r in rows],
            "correctness_math_verify": [[r["score"][0], False] for r in rows],
            "finish_reasons": [["stop", "length"] for _ in rows],
            "uuid": [f"u{i}" for i in range(len(rows))],
        }
    )
    buf = pa.BufferOutputStream()
    pq.write_table(r1, buf)
    repo = fake_hub.repos["org/r1-sample"] = {"commits": {}, "log": [], "branches": {}, "tags": {}}
    fake_hub.commit(repo, {"data/train-00000-of-00001.parquet": buf.getvalue().to_pybytes()}, "add data")
    out = tmp_path / "traces"
    cfg = source({"preset": "openr1", "dataset": "org/r1-sample", "split": "train"})
    result = import_traces(cfg, out)
    assert (result["rows"], result["traces"], result["problems"]) == (6, 12, 6)
    traces = table(out, TRACES)
    assert [t["sample_index"] for t in traces] == [0, 1] * 6  # one trace per generation, in list order
    assert [t["finish_reason"] for t in traces] == ["stop", "length"] * 6  # the source's, not inferred
    assert {t["model"] for t in traces} == {"org/r1-sample"}
    assert json.loads(traces[0]["sampling"])["imported_from"] == "org/r1-sample"
    assert any(r["method"] == "GET" and r["path"].endswith(".parquet") for r in fake_hub.requests)
    with pytest.raises(MissingColumnError, match=r"'no_such'.*columns are \[.*'uuid'"):
        import_traces(
            source({"preset": "openr1", "dataset": "org/r1-sample", "columns": {"id": "no_such"}}), tmp_path / "x"
        )


def test_a_missing_column_or_unknown_preset_fails_before_anything_is_written(shared_data, tmp_path):
    out = tmp_path / "traces"
    # the SkyThought mapping on PRM800K records: `question` exists there, `gt` does not
    with pytest.raises(MissingColumnError) as err:
        import_traces(source({"preset": "skythought", "path": str(shared_data / PRM)}), out)
    assert "no column 'gt' (mapped to answer)" in str(err.value) and "'label'" in str(err.value)
    assert not out.exists() and not (tmp_path / "problems").exists()
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.table({"question": ["q"], "gt": ["1"]}), parquet)
    with pytest.raises(MissingColumnError, match=r"no column 'code' \(mapped to generations\).*\['gt', 'question'\]"):
        import_traces(source({"preset": "skythought", "path": str(parquet)}), out)
    assert not out.exists()
    with pytest.raises(ValueError, match=r"unknown preset 'openthought'; known presets: \['bespoke', 'messages'"):
        source({"preset": "openthought", "path": str(parquet)})
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['generation'\]"):
        source({"preset": "openr1", "path": str(parquet), "columns": {"generation": "x"}})
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        RELABEL.load("relabel", {"import.preset": "nope"})
    with pytest.raises(ValueError, match="map `problem` and `generations`"):
        import_traces(source({"path": str(parquet)}), out)


def test_bad_rows_are_quarantined_with_their_reason_and_nothing_is_dropped(tmp_path):
    good = "<think>\n1 + 1 = 2\n</think>\n\n\\boxed{2}"
    rows = [
        {"q": "What is 1 + 1?", "a": "2", "gens": [good, "<think>\n1 + 1 = 3\n</think>\n\n\\boxed{3}"]},
        {"q": None, "a": "2", "gens": [good]},  # no problem
        {"q": "   ", "a": "2", "gens": [good]},  # blank problem
        {"q": "What is 2 + 2?", "a": None, "gens": [good]},  # no gold answer
        {"q": "What is 3 + 3?", "a": "6", "gens": []},  # no generations
        {"q": "What is 4 + 4?", "a": "8", "gens": ["", None, "<think>\n4 + 4 = 8\n</think>\n\n\\boxed{8}"]},
        {"q": "What is 1 + 1?", "a": "2", "gens": [good]},  # the first row's trace again
        {"q": "What is 5 + 5?", "a": "10", "gens": 7},  # not text
        {"q": "What is 6 + 6?", "a": "12", "gens": ["<think>\n6 + 6 = 12 \udc80\n</think>"]},  # undecodable bytes
        {"q": "What is <|im_end|> 7 + 7?", "a": "14", "gens": [good]},  # a chat control token
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # ensure_ascii: the lone surrogate survives
    out = tmp_path / "traces"
    ctx = StageContext(
        tmp_path,
        source({"path": str(path), "columns": {"problem": "q", "answer": "a", "generations": "gens"}}),
        {},
        out,
    )
    result = run_import(ctx)
    rejects = table(rejects_dir(out), REJECTS)
    reasons = sorted(r["reason"] for r in rejects)
    assert reasons == sorted(
        ["empty_problem", "empty_problem", "missing_answer", "empty_generation", "empty_generation",
         "empty_generation", "duplicate_trace", "bad_value", "invalid_utf8", "control_tokens"]
    )  # fmt: skip
    assert result["rejected_empty_generation"] == 3 and result["rejected_missing_answer"] == 1
    assert result["imported"] == {"rows": 10, "traces": 3, "quarantined": 10, "problems": 2, "source_marked_correct": 0}
    # every source row is a trace or a quarantine row (with the row itself as its payload)
    traces = table(out, TRACES)
    assert len(traces) == 3 and {t["problem"] for t in traces} == {"What is 1 + 1?", "What is 4 + 4?"}
    assert all(r["payload"].startswith("{") and r["stage"] == "import" and r["detail"] for r in rejects)
    bad_value = next(r for r in rejects if r["reason"] == "bad_value")
    assert "generations column holds a int" in bad_value["detail"]


def test_a_killed_import_resumes_without_repeating_a_row(shared_data, tmp_path):
    cfg = source({"preset": "skythought", "path": str(shared_data / SKY), "shard_size": 16, "limit": 40})
    out = tmp_path / "traces"
    ctx = StageContext(tmp_path, cfg, {}, out)
    first = run_import(ctx)
    ids = [t["trace_id"] for t in table(out, TRACES)]
    assert first["status"] == "ran" and first["shards"] == 3 and len(ids) == 40
    # killed before its last shard: the traces shard (written last) and the marker are missing
    (out / "traces-00002.parquet").unlink()
    (out / ".complete").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in shard_paths(out)}
    again = run_import(ctx)
    assert again["status"] == "ran" and [t["trace_id"] for t in table(out, TRACES)] == ids
    assert {p.name: p.stat().st_mtime_ns for p in shard_paths(out) if p.name in kept} == kept  # not redone
    assert len(table(out.parent / "problems", PROBLEMS)) == 40
    assert run_import(ctx)["status"] == "complete, skipped"


def test_inspector_shows_imported_traces_without_confidence(sky, tmp_path):
    """The inspector's page over imported (unlabeled) traces: it renders, and says n/a for confidence."""
    from test_inspect import Browser  # tests/ is on sys.path

    root = tmp_path / "run"
    (root / "labeled").mkdir(parents=True)
    # as labeled traces with every label column null (what the label stage adds is not what is tested here)
    unlabeled = to_table(table(sky[0], TRACES)[:10], LABELED_TRACES)
    pq.write_table(unlabeled, root / "labeled" / "a.parquet")
    report = build_report(root, root / "report.html", layout=RELABEL.inputs_of("report", root))
    assert report.shown == 10
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(report.path)
        browser.js("document.querySelector('nav a[data-tab=traces]').click()")
        browser.wait_for("Page.navigatedWithinDocument")
        text = browser.js("document.getElementById('trace').textContent")
        assert "conf n/a" in text and "confidence n/a" in text
        assert not browser.errors, browser.errors
    finally:
        browser.close()


@pytest.mark.vllm
def test_real_traces_label_pair_filter_publish_and_train(sky, shared_data, tmp_path, teacher_engine, student_engine):
    root = tmp_path / "run"
    traces = root / "traces"
    traces.mkdir(parents=True)
    for path in shard_paths(sky[0]):  # the SkyThought traces and the PRM800K ones, one folder
        (traces / path.name).write_bytes(path.read_bytes())
    import_traces(source({"preset": "prm800k", "path": str(shared_data / PRM)}), tmp_path / "prm" / "traces")
    (traces / "traces-prm.parquet").write_bytes(shard_paths(tmp_path / "prm" / "traces")[0].read_bytes())

    label = LabelConfig(
        labelers=["symbolic", "judge"],
        judge={"template": "compact", "max_tokens": 200},
        consensus={"sources": ["judge", "symbolic"], "min_sources": 1},
        fidelity={"info_gain": False},  # per-step scoring of 100k-char traces: not what this test is about
    )
    Label(traces, root / "labeled", label, engines={"judge": teacher_engine}).run()
    labeled = table(root / "labeled", LABELED_TRACES)
    assert len(labeled) == 84
    assert any(t["final_correct"] for t in labeled) and not all(t["final_correct"] for t in labeled)
    judged = [t for t in labeled if t["first_error_judge"] is not None]
    assert judged, "the tiny teacher judged no trace"
    assert any(t["first_error_symbolic"] is not None for t in labeled)
    assert all(t["overthinking"] is None for t in labeled)  # no token counts to compare

    pairs = PairsConfig(kinds=["step", "trace", "fidelity"], next_step={"candidates": 2, "max_tokens": 32},
                        rollouts={"strategy": "per_step", "k": 2, "max_tokens": 100})  # fmt: skip
    step = Pairs(root / "labeled", root / "pairs", pairs, engines={"generator": teacher_engine})
    step.run()
    assert step.stats["trace_pairs_skipped_no_confidence"].total == 84
    frontier = FrontierConfig(samples=2, sampling={"max_tokens": 200, "logprobs": 0}, pass_rate_band=(0.0, 1.0))
    Frontier(root / "labeled", root / "frontier", frontier, engines={"student": student_engine}).run()

    inputs = {
        name: root / folder for name, folder in (("label", "labeled"), ("pairs", "pairs"), ("frontier", "frontier"))
    }
    export = run_export(StageContext(root, ExportConfig(frontier_applies_to=[]), inputs, root / "configs"))
    assert export["configs"]["traces"] == 84 and export["configs"]["prm"] > 0
    published = run_publish(
        StageContext(root, PublishConfig(target="local", path="dataset"), {"export": root / "configs"}, None)
    )
    folder = published["path"]
    trained = 0
    for config, info in published["configs"].items():
        if "skipped" in info:  # no rows (dpo: the tiny models' pairs on real traces may be none)
            assert export["configs"][config] == 0
            continue
        ds = load_dataset(folder, config, split="train", cache_dir=str(tmp_path / "cache"))
        assert len(ds) == export["configs"][config]
        if config in ("sft", "dpo") and len(ds):
            result = train(TrainConfig(method=config, dataset=folder, max_steps=2, batch_size=2), tmp_path / config)
            assert result["steps"] == 2 and math.isfinite(result["training_loss"])
            trained += 1
    print(f"real traces: exported {export['configs']}, trained on {trained} config(s)")
    assert trained >= 1, export["configs"]


@pytest.mark.vllm
def test_relabel_pipeline_end_to_end_on_the_shipped_sample(
    tmp_path, teacher_engine, student_engine, keep_session_engines
):
    recipe = RELABEL.load(
        "relabel",
        {"label.rollouts": {"strategy": "binary_search", "k": 2, "max_tokens": 120}, "pairs.rollouts.k": 2,
         "pairs.next_step.candidates": 2, "frontier.samples": 2},
    )  # fmt: skip
    root = tmp_path / "run"
    summary: dict = {"recipe": recipe.name, "stages": {}}
    for name in RELABEL.names:
        summary["stages"][name] = run_stage(RELABEL, name, recipe, root, summary)
    (root / "run.json").write_text(json.dumps(summary, default=str))
    stages = summary["stages"]
    assert (
        stages["import"]["imported"]["traces"] == 21 and stages["import"]["rejected_contaminated:arithmetic:eval"] == 3
    )
    assert stages["label"]["rows_out"] == 21
    assert stages["pairs"]["trace_pairs_skipped_no_confidence"] == 21
    labeled = table(root / "labeled", LABELED_TRACES)
    assert {t["model"] for t in labeled} == {"hand-written"}
    # the bundled traces that slip on a step end wrong, and the symbolic checker finds the slip
    for t in labeled:
        assert (t["first_error_symbolic"] is not None and t["first_error_symbolic"] >= 0) == (not t["final_correct"])
    assert 0 < sum(t["final_correct"] for t in labeled) < len(labeled)
    dataset, configs = stages["publish"]["path"], stages["publish"]["configs"]
    assert set(configs) == {"sft", "prm", "dpo", "traces"} and not any("skipped" in c for c in configs.values())
    for config in configs:
        assert len(load_dataset(dataset, config, split="train", cache_dir=str(tmp_path / "cache"))) > 0
    assert Path(stages["report"]["path"]).stat().st_size > 10_000
    again = run_stage(RELABEL, "import", recipe, root)
    assert again["status"] == "complete, skipped"
