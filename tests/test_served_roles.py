"""Model roles served over HTTP by a real vLLM server process the flow starts and stops.

The tiny teacher is served under another name, so nothing can lean on a local tokenizer found by
the served name: chat prompts must come from the server's own template.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import psutil
import pyarrow as pa
import pytest
from conftest import DEMO_OVERRIDES, TINY  # tests/ is on sys.path (pytest rootdir conftest)

from flows.curate import run_stage
from flows.pipeline import PIPELINE, load_recipe
from schemas import TRACES
from schemas.labels import LABELED_TRACES
from stages.engine import EngineConfig, EngineUnavailable, SamplingConfig
from stages.engine.pool import POOL, EnginePool
from stages.engine.server import ServerFailed, VLLMServer
from stages.shards import read_table, shard_paths

pytestmark = pytest.mark.vllm

SERVED = {"backend": "openai", "model": "tiny:teacher", **TINY, "serve": {"served_model_name": "served-teacher"}}


def rows(folder, features) -> list[dict]:
    return pa.concat_tables([read_table(p, features) for p in shard_paths(folder)]).to_pylist()


def servers_named(name: str) -> list[int]:
    """Live processes of a vLLM server serving `name`."""
    return [p.pid for p in psutil.process_iter(["cmdline"]) if name in " ".join(p.info["cmdline"] or [])]


def gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def served_teacher():
    config = EngineConfig.model_validate(SERVED)
    with EnginePool() as pool:
        http = pool.open(config, "judge")  # starts the server
        server = pool.serve(config, "judge")  # the same one
        assert http.url == server.url and http.name == "served-teacher"
        yield server, http
    assert gone(server.proc.pid)


def test_served_chat_prompts_use_the_servers_template_and_generate_like_in_process(served_teacher, teacher_engine):
    _, http = served_teacher
    prompt = http.chat_prompt("What is 12 + 7?")
    assert prompt == teacher_engine.chat_prompt("What is 12 + 7?")  # the server's template, not bare text
    assert http.max_model_len == teacher_engine.max_model_len
    assert http.count_tokens(prompt) == teacher_engine.count_tokens(prompt)
    greedy = SamplingConfig(n=1, temperature=0.0, max_tokens=120, logprobs=2)
    prompts = [http.chat_prompt(f"What is {a} + {b}?") for a, b in ((3, 4), (25, 17), (9, 8))]
    over_http, local = http.generate(prompts, greedy), teacher_engine.generate(prompts, greedy)
    for h, g in zip(over_http, local):
        assert h.error is None and h.samples[0].text == g.samples[0].text
        s = h.samples[0]
        assert len(s.logprobs) == len(s.entropies) == len(s.offsets) > 0 and s.offsets == sorted(s.offsets)
        assert max(abs(a - b) for a, b in zip(s.logprobs, g.samples[0].logprobs)) < 1e-3
    # max_tokens past the context is capped to the room left, as in-process (the math recipe's
    # judge asks 4096 of a 512-token tiny model): not a 400 for every request
    long = SamplingConfig(n=1, temperature=0.0, max_tokens=5000, logprobs=0)
    assert (
        http.generate(prompts[:1], long)[0].samples[0].text
        == teacher_engine.generate(prompts[:1], long)[0].samples[0].text
    )


def test_generate_stage_through_the_server_writes_valid_traces(tmp_path, served_teacher):
    from test_generate import demo_problems, write_problems

    from stages.generate.stage import Generate, GenerateConfig

    _, http = served_teacher
    write_problems(tmp_path / "problems", demo_problems(4))
    cfg = GenerateConfig(sampling=SamplingConfig(n=2, max_tokens=300, seed=0), store_logprobs=True, chunk_size=4)
    Generate(tmp_path / "problems", tmp_path / "traces", cfg, engines={"generator": http}).run()
    traces = rows(tmp_path / "traces", TRACES)
    assert len(traces) == 8 and all(t["prompt"].startswith("<|user|>") for t in traces)
    assert sum(t["final_answer"] is not None for t in traces) >= 6
    steps = [s for t in traces for s in t["steps"]]
    assert steps and all(s["mean_logprob"] is not None and s["token_end"] > s["token_start"] for s in steps)


def served_label_recipe(**judge):
    """The demo recipe with its judge served; the label stage uses no in-process engine."""
    models = {"models.judge": {**SERVED, "serve": {"served_model_name": "flow-teacher"}, **judge}}
    return load_recipe("demo", {**DEMO_OVERRIDES, **models, "label.labelers": ["symbolic", "judge"],
                                "label.consensus.sources": ["judge", "symbolic"],
                                "label.fidelity.info_gain": False})  # fmt: skip


def copy_inputs(demo_root, root):
    for name in ("problems", "generate"):
        shutil.copytree(PIPELINE.path(name, demo_root), PIPELINE.path(name, root))


def test_flow_started_judge_matches_the_in_process_judge(tmp_path, demo_run, keep_session_engines):
    """The label stage with the judge role `serve:`d: the flow starts the server, the verdicts
    equal the in-process judge's on the same traces (greedy), and the server is stopped after."""
    demo_root = demo_run[0]
    copy_inputs(demo_root, tmp_path)
    recipe = served_label_recipe()
    try:
        result = run_stage(PIPELINE, "label", recipe, tmp_path)
        assert servers_named("flow-teacher")  # kept for later stages of the run that use the role
    finally:
        POOL.stop_servers()  # what the flow does when the run ends, failed or not
    assert result["status"] == "ran" and not servers_named("flow-teacher")
    here = {t["trace_id"]: t for t in rows(PIPELINE.path("label", tmp_path), LABELED_TRACES)}
    there = {t["trace_id"]: t for t in rows(PIPELINE.path("label", demo_root), LABELED_TRACES)}
    assert here.keys() == there.keys() and len(here) == 48
    usable = [sum(t["first_error_judge"] is not None for t in d.values()) / len(d) for d in (here, there)]
    assert abs(usable[0] - usable[1]) <= 0.05 and usable[0] > 0.5
    same = [tid for tid in here if here[tid]["first_error_judge"] == there[tid]["first_error_judge"]]
    assert len(same) == len(here), {t: (here[t]["first_error_judge"], there[t]["first_error_judge"]) for t in here}
    assert list((tmp_path / "logs" / "servers").glob("serve-judge-*.log"))  # the server's own log
    notes = [json.loads(t["provenance"]) for t in here.values()]
    assert not any("judge_error" in json.dumps(n) for n in notes)


def test_a_crashing_server_fails_the_stage_naming_role_and_url_and_nothing_is_left(
    tmp_path, demo_run, keep_session_engines
):
    copy_inputs(demo_run[0], tmp_path)
    recipe = served_label_recipe(serve={"served_model_name": "flow-teacher", "args": ["--no-such-flag"]})
    start = time.monotonic()
    with pytest.raises(ServerFailed, match=r"model role 'judge': server at http://127\.0\.0\.1:\d+/v1 exited") as err:
        run_stage(PIPELINE, "label", recipe, tmp_path)
    assert "no-such-flag" in str(err.value) and time.monotonic() - start < 120
    assert not PIPELINE.path("label", tmp_path).exists() or not shard_paths(PIPELINE.path("label", tmp_path))


def test_a_server_never_healthy_is_stopped_within_its_timeout(tmp_path):
    config = EngineConfig.model_validate({**SERVED, "serve": {"startup_timeout_s": 3}})
    server = VLLMServer(config, "judge", tmp_path)
    start = time.monotonic()
    with pytest.raises(ServerFailed, match="not healthy within 3 s, stopped"):
        server.start()
    assert time.monotonic() - start < 3 + 35 and gone(server.proc.pid)


def test_an_unreachable_judge_fails_the_stage_before_any_work(tmp_path, demo_run, keep_session_engines):
    copy_inputs(demo_run[0], tmp_path)
    url = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    recipe = load_recipe(
        "demo", {**DEMO_OVERRIDES, "models.judge": {"backend": "openai", "model": "t", "base_url": url}}
    )
    with pytest.raises(EngineUnavailable, match=r"model role 'judge': server at http://127\.0\.0\.1:9/v1 unreachable"):
        run_stage(PIPELINE, "label", recipe, tmp_path)
    assert not PIPELINE.path("label", tmp_path).exists() or not shard_paths(PIPELINE.path("label", tmp_path))


def test_serve_settings_need_the_http_backend_and_exclude_a_base_url():
    with pytest.raises(ValueError, match="set backend: openai"):
        EngineConfig.model_validate({"model": "tiny:teacher", "serve": {}})
    with pytest.raises(ValueError, match="not both"):
        EngineConfig.model_validate({**SERVED, "base_url": "http://x/v1"})
    assert EngineConfig.model_validate(SERVED).request_model == "served-teacher"


def test_serve_command_keeps_a_local_base_url_and_refuses_an_unknown_role(capsys):
    from flows.cli import main
    from stages.engine.server import standalone

    judge = (
        load_recipe("math").models["judge"].model_copy(update={"serve": None, "base_url": "http://localhost:8000/v1"})
    )
    config = standalone(judge)
    assert (config.serve.port, config.base_url, config.backend) == (8000, None, "openai")  # the URL runs reach
    assert standalone(judge, port=9001).serve.port == 9001
    assert standalone(load_recipe("math").models["judge"]).serve.devices == [4, 5, 6, 7]  # its serve: as given
    with pytest.raises(SystemExit, match="has no model role 'teacher'"):
        main(["serve", "--recipe", "math", "--role", "teacher"])
