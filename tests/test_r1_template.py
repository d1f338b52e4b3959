"""An R1-style chat template (the generation prompt opens `<think>`, as DeepSeek-R1-Distill's and
Qwen3's do) on real vLLM with the tiny teacher: generate, split, segment and label stay right.

The R1 engine is a view of the session's teacher engine (`with_chat_template`): a template is
text-side only, and a second engine of the same model would fail the session's start-once check.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from schemas import LABELED_TRACES, PROBLEMS, TRACES
from stages.answers import prompt_opening, split_thinking
from stages.arithmetic.truth import first_error, problem_step_truth
from stages.engine import EngineConfig, SamplingConfig
from stages.engine.types import load_chat_template, resolve_chat_template
from stages.engine.vllm_offline import VLLMEngine
from stages.generate.stage import Generate, GenerateConfig
from stages.label.stage import Label, LabelConfig
from stages.problems.stage import ProblemSourceConfig, load_problems
from stages.rollouts import RolloutConfig, rollout_values
from stages.segment import step_prefix
from stages.shards import read_table, shard_paths, write_table
from stages.verification.verify import verify_answer

pytestmark = pytest.mark.vllm

R1 = "tiny:r1"
OPEN = "<think>\n"  # what the tiny teacher writes first (infra/tiny_reasoner/train.py): the R1 prompt's end
SAMPLING = SamplingConfig(n=4, max_tokens=300, seed=0)


@pytest.fixture(scope="module")
def r1_engine(teacher_engine):
    return teacher_engine.with_chat_template(R1)


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return list(load_problems(ProblemSourceConfig(split="demo", limit=12)))


def run_generate(folder, engine, rows, sampling=SAMPLING) -> list[dict]:
    write_table(pa.Table.from_pylist(rows, schema=PROBLEMS.arrow_schema), folder / "p" / "p.parquet", PROBLEMS)
    cfg = GenerateConfig(sampling=sampling, store_logprobs=True, chunk_size=len(rows))
    Generate(folder / "p", folder / "t", cfg, engines={"generator": engine}).run()
    return pa.concat_tables([read_table(p, TRACES) for p in shard_paths(folder / "t")]).to_pylist()


@pytest.fixture(scope="module")
def traces(tmp_path_factory, teacher_engine, r1_engine, problems) -> dict[str, list[dict]]:
    """The same problems and seeds under each template."""
    root = tmp_path_factory.mktemp("r1")
    return {
        "default": run_generate(root / "default", teacher_engine, problems),
        "r1": run_generate(root / "r1", r1_engine, problems),
    }


def accuracy(rows: list[dict]) -> float:
    return sum(bool(verify_answer(t["gold_answer"], t["final_answer"])) for t in rows) / len(rows)


def assert_steps_line_up(t: dict) -> None:
    """Steps tile the thinking in chars, and their token spans spell the same text."""
    text, offs, lps = t["completion"], t["token_offsets"], np.array(t["token_logprobs"])
    ends = offs[1:] + [len(text)]
    assert "".join(t["thinking"][s["char_start"] : s["char_end"]] for s in t["steps"]) == t["thinking"]
    start = t["thinking_start"]
    for s in t["steps"]:
        spelled = text[offs[s["token_start"]] : ends[s["token_end"] - 1]]
        assert spelled == text[start + s["char_start"] : start + s["char_end"]]
        assert s["mean_logprob"] == pytest.approx(lps[s["token_start"] : s["token_end"]].mean(), rel=1e-5)


def test_template_names_resolve_and_a_missing_one_fails_before_the_engine_starts(tmp_path):
    assert resolve_chat_template(R1).name == "chat_template_r1.jinja"
    assert load_chat_template(str(resolve_chat_template(R1))) == load_chat_template(R1)
    assert load_chat_template(None) is None
    with pytest.raises(FileNotFoundError, match="chat_template_nope.jinja"):
        load_chat_template("tiny:nope")
    with pytest.raises(FileNotFoundError, match="missing.jinja"):  # raised before vLLM is started
        VLLMEngine(EngineConfig(model="tiny:teacher", chat_template=str(tmp_path / "missing.jinja")))


def test_r1_prompt_is_the_default_one_with_the_thinking_opened(teacher_engine, r1_engine):
    user = "What is (1 + 8) * 2 - 3?"
    assert r1_engine.chat_prompt(user) == teacher_engine.chat_prompt(user) + OPEN
    assert r1_engine.config.chat_template == R1 and teacher_engine.chat_template is None
    path_view = teacher_engine.with_chat_template(str(resolve_chat_template(R1)))
    assert path_view.chat_prompt(user) == r1_engine.chat_prompt(user)


def test_greedy_r1_completion_is_the_default_one_after_its_opening(teacher_engine, r1_engine, problems):
    """Same context token for token, so greedy decoding must continue identically."""
    greedy = SamplingConfig(n=1, temperature=0.0, max_tokens=300)
    default = teacher_engine.generate([teacher_engine.chat_prompt(p["problem"]) for p in problems], greedy)
    r1 = r1_engine.generate([r1_engine.chat_prompt(p["problem"]) for p in problems], greedy)
    assert {prompt_opening(g.prompt) for g in r1} == {OPEN} and {prompt_opening(g.prompt) for g in default} == {""}
    same = sum(d.samples[0].text == prompt_opening(r.prompt) + r.samples[0].text for d, r in zip(default, r1))
    assert same >= len(problems) - 1, f"{same}/{len(problems)} greedy completions equal"


def test_r1_traces_split_segment_and_answer_like_default_ones(traces):
    r1 = traces["r1"]
    assert len(r1) == len(traces["default"]) == 48
    stopped = 0
    for t in r1:
        assert t["prompt"].endswith("<|assistant|>" + OPEN)
        assert "<think>" not in t["completion"]
        assert t["thinking_start"] == 0 and t["thinking"].strip()
        assert t["thinking"] + "</think>" + t["answer_text"] == t["completion"] or t["finish_reason"] != "stop"
        assert len(t["steps"]) >= 2
        assert_steps_line_up(t)
        if t["finish_reason"] == "stop":
            stopped += 1
            assert "\\boxed{" in t["answer_text"] and t["final_answer"] is not None
            assert t["thinking_answer"] is not None  # "So the answer is N." ends the thinking
    assert stopped >= len(r1) - 2
    for t in traces["default"]:  # the default template's thinking starts after the model's own tag
        assert t["completion"].startswith(OPEN) and t["thinking_start"] == len("<think>")
    acc_r1, acc_default = accuracy(r1), accuracy(traces["default"])
    assert 0.4 <= acc_r1 and abs(acc_r1 - acc_default) <= 0.2, (acc_r1, acc_default)
    steps = [np.mean([len(t["steps"]) for t in traces[k]]) for k in ("r1", "default")]
    assert abs(steps[0] - steps[1]) <= 1.0, steps


def test_truncated_r1_trace_is_all_thinking_with_no_answer(tmp_path, r1_engine, problems):
    """With no tag in the completion at all, only the opened prompt says it is thinking."""
    short = SamplingConfig(n=2, max_tokens=40, seed=0)
    for t in run_generate(tmp_path, r1_engine, problems[:4], short):
        assert t["finish_reason"] == "length" and "</think>" not in t["completion"]
        assert t["thinking"] == t["completion"] and t["answer_text"] == "" and t["final_answer"] is None
        assert t["steps"] and t["answer_tokens"] == 0
        assert_steps_line_up(t)
        split = split_thinking(t["completion"], prompt_opened=True)
        assert not split.closed


def label(folder, rows, teacher_engine, judge_engine) -> list[dict]:
    write_table(pa.Table.from_pylist(rows, schema=TRACES.arrow_schema), folder / "t" / "t.parquet", TRACES)
    cfg = LabelConfig(
        labelers=["symbolic", "mc", "judge"],
        rollouts=RolloutConfig(k=4, max_tokens=300),
        judge={"template": "compact", "max_tokens": 400},  # as the demo recipe
        consensus={"sources": ["mc", "judge", "symbolic"], "after_error": "wrong"},
    )
    engines = {"completer": teacher_engine, "judge": judge_engine}
    Label(folder / "t", folder / "l", cfg, engines=engines).run()
    return pa.concat_tables([read_table(p, LABELED_TRACES) for p in shard_paths(folder / "l")]).to_pylist()


def test_r1_traces_get_the_same_kind_of_labels(tmp_path, traces, teacher_engine, r1_engine):
    """Symbolic step checks agree with exact truth, the judge (itself under the R1 template)
    answers, MC rollouts continue step prefixes that open the thinking once, and fidelity's
    answer forcing scores every step."""
    got = {}
    for name, judge in (("r1", r1_engine), ("default", teacher_engine)):
        rows = label(tmp_path / name, traces[name][:16], teacher_engine, judge)
        exact = [first_error(problem_step_truth(t["problem"], [s["text"] for s in t["steps"]])) for t in rows]
        got[name] = {
            "symbolic_exact": np.mean([t["first_error_symbolic"] == e for t, e in zip(rows, exact)]),
            "judge": np.mean([t["first_error_judge"] is not None for t in rows]),
            "mc": np.mean([t["first_error_mc"] is not None for t in rows]),
            "agree": np.mean([t["consensus"] == "agree" for t in rows]),
        }
        for t in rows:
            assert all(s["info_gain"] is not None and np.isfinite(s["info_gain"]) for s in t["steps"])
            assert t["final_correct"] == bool(verify_answer(t["gold_answer"], t["final_answer"]))
    r1, default = got["r1"], got["default"]
    assert r1["symbolic_exact"] >= 0.9 and r1["judge"] >= 0.5 and r1["mc"] >= 0.9 and r1["agree"] >= 0.5, got
    for key in r1:
        assert abs(r1[key] - default[key]) <= 0.35, got


def test_r1_step_prefixes_open_the_thinking_once_and_roll_out_to_the_answer(traces, teacher_engine):
    right = [t for t in traces["r1"] if verify_answer(t["gold_answer"], t["final_answer"])][:4]
    items = [(t, step_prefix(t, i)) for t in right for i in (-1, len(t["steps"]) - 1)]
    for _, prefix in items:
        assert prefix.count("<think>") == 1
    values = [r.value for r in rollout_values(teacher_engine, RolloutConfig(k=4, max_tokens=300), items)]
    assert None not in values and np.mean(values) >= 0.5, values
    assert np.mean(values[1::2]) >= 0.75, values  # from a right trace's last step, the answer follows
