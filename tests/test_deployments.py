"""The product's front door, end to end: a real Prefect server (its own PREFECT_HOME), the
deployments of `prefect.yaml` registered by `infra/prefect/deploy.sh`, a real process worker,
and `prefect deployment run curate/...` watched to completion; then the published dataset is
loaded back with `datasets`. Flow runs execute in worker subprocesses with their own engines.
The `curate/demo` run is the session's `demo_run` (conftest), which later tests read too."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
from datasets import load_dataset
from prefect_stack import PREFECT, ROOT, deployment_command, flow_run_processes, run_deployment

from flows.pipeline import PIPELINE, load_recipe

TINY_ENGINE = {"model": "tiny:teacher", "enforce_eager": True, "block_size": 32, "kv_cache_memory_bytes": 512 << 20}
# The math recipe pointed at the tiny reasoner and bundled problems, key by key: what a user
# overrides to smoke-test a GPU recipe on a laptop.
MATH_ON_TINY = {
    "problems": {"kind": "arithmetic", "split": "demo", "limit": 4},
    "models": {role: TINY_ENGINE for role in ("generator", "completer", "judge")}
    | {"student": {**TINY_ENGINE, "model": "tiny:student"}},
    "generate.sampling": {"n": 4, "temperature": 1.0, "max_tokens": 400, "logprobs": 5, "seed": 0},
    "generate.prompt_template": "{problem}",
    "label.rollouts": {"strategy": "binary_search", "k": 4, "max_tokens": 300},
    "label.judge": {"template": "compact", "max_tokens": 400},
    "label.fidelity": {"info_gain": True},
    "label.chunk_size": 4,  # four label chunks: the run below is killed after the first
    "pairs.next_step": {"candidates": 4, "max_tokens": 48},
    "pairs.rollouts": {"k": 4, "max_tokens": 300},
    "frontier.samples": 4,
    "frontier.sampling": {"max_tokens": 400, "temperature": 1.0},
    "frontier.prompt_template": "{problem}",
    "publish": {"target": "local", "path": "dataset"},
    # one worker: the math recipe's four (one per GPU) would only share this machine's 2 cores
    "executor": {"kind": "local", "tasks": 1, "workers": 1},
}


def _check_published(out: Path) -> dict:
    run = json.loads((out / "run.json").read_text())
    assert run["complete"]
    dataset = Path(run["stages"]["publish"]["path"])
    assert (dataset / "README.md").exists()
    sizes = {}
    for config in run["stages"]["publish"]["configs"]:
        ds = load_dataset(str(dataset), config, split="train")
        sizes[config] = len(ds)
    assert sizes.get("sft", 0) > 0 and sizes.get("prm", 0) > 0, sizes
    return run


def test_deployment_run_curate_demo(demo_run):
    root, run, recipe = demo_run
    assert _check_published(root) == run and run["recipe"] == "demo"
    assert run["stages"]["generate"]["rows_out"] == recipe.problems.limit * recipe.generate.sampling.n


def assert_only_needed_engines_alive(run: dict, recipe) -> None:
    """With one local worker, stages run in the flow's process: at each stage's start, the engines
    alive serve only roles the stage uses (roles with equal settings share one engine), so the
    teacher is closed before the frontier's student starts."""
    engines = {n: s["engines_at_start"] for n, s in run["stages"].items() if "engines_at_start" in s}
    for name, alive in engines.items():
        section = getattr(recipe, name)
        needed = {recipe.models[r].model_dump_json() for r in section.roles_used().values()}
        assert all(recipe.models[role].model_dump_json() in needed for role in alive), (name, alive)
    assert engines["frontier"] == []  # the teacher was closed before the student started
    return engines


def test_one_worker_keeps_only_the_engines_the_next_stage_uses(demo_run):
    root, run, recipe = demo_run
    assert recipe.executor.workers == 1
    engines = assert_only_needed_engines_alive(run, recipe)
    # the demo's step pairs come from the label stage's rollouts: the pairs stage starts no engine
    assert not recipe.pairs.roles_used()
    assert set(engines) == {"generate", "label", "frontier"} and engines["generate"] == []
    assert "judge" in engines["label"]  # the teacher is shared by generate and label, not restarted


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert proc.poll() is None, "the flow ended before the label stage wrote a chunk"
        time.sleep(0.2)
    raise TimeoutError("label stage never wrote a chunk")


def test_curate_math_with_overrides_killed_during_label_resumes_without_regenerating(prefect_stack, tmp_path):
    """`prefect deployment run curate/math` with overrides pointing at the tiny reasoner: the
    flow-run process is SIGKILLed (with its children) once the label stage has written its first
    chunk; the same deployment run again reports generate as complete-and-skipped, leaves the
    trace shards untouched, runs only the label chunks left, loses and duplicates no row, and
    publishes a dataset that loads; the rest of the math recipe held."""
    out = tmp_path / "math"
    params = {"out": str(out), "overrides": MATH_ON_TINY}
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(deployment_command("curate/math", params), cwd=ROOT, env=prefect_stack.env, stdout=log)
    try:
        _wait_for(lambda: any(PIPELINE.path("label", out).glob("*.parquet")), 600, first)
        victims = flow_run_processes(prefect_stack)
        assert victims, "no flow-run process under the worker"
        for proc in victims:
            for p in [*proc.children(recursive=True), proc]:
                p.kill()
        first.wait(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    first_out = (tmp_path / "first.log").read_text()
    assert "Completed" not in first_out.split("Flow run")[-1], first_out[-2000:]
    traces_dir, labeled_dir = PIPELINE.path("generate", out), PIPELINE.path("label", out)
    traces_before = {p.name: p.stat().st_mtime_ns for p in traces_dir.glob("*.parquet")}
    labeled_before = len(list(labeled_dir.glob("*.parquet")))
    assert traces_before and not json.loads((out / "run.json").read_text())["complete"]

    run_deployment(prefect_stack, "curate/math", params)
    run = _check_published(out)
    recipe = json.loads((out / "recipe.json").read_text())
    assert run["recipe"] == "math" and recipe["models"]["generator"]["model"] == "tiny:teacher"
    assert recipe["label"]["rollouts"]["strategy"] == "binary_search"  # the rest of the math recipe holds
    assert run["stages"]["generate"]["status"] == "complete, skipped"
    assert {p.name: p.stat().st_mtime_ns for p in traces_dir.glob("*.parquet")} == traces_before
    label = run["stages"]["label"]
    assert label["status"] == "ran" and label["chunks_skipped"] == labeled_before
    labeled = pq.read_table(labeled_dir).column("trace_id").to_pylist()
    traces = pq.read_table(traces_dir).column("trace_id").to_pylist()
    assert len(traces) == 4 * 4
    assert sorted(labeled) == sorted(traces)  # nothing lost, nothing duplicated
    assert_only_needed_engines_alive(run, load_recipe("math", MATH_ON_TINY))


def test_unknown_override_key_fails_the_run(prefect_stack):
    cmd = deployment_command("curate/demo", {"overrides": {"generate.sampling.temprature": 0.5}}, watch_timeout=300)
    done = subprocess.run(cmd, cwd=ROOT, env=prefect_stack.env, capture_output=True, text=True, timeout=360)
    assert done.returncode != 0 or "Failed" in done.stdout, done.stdout[-2000:]
    assert "Completed" not in done.stdout.split("Flow run")[-1]


def test_math_schedule_is_registered(prefect_stack):
    done = subprocess.run(
        [str(PREFECT), "deployment", "inspect", "curate/math"],
        env=prefect_stack.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0 2 * * *" in done.stdout and "'active': False" in done.stdout
