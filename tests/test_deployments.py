"""The product's front door, end to end: a real Prefect server (its own PREFECT_HOME), the
deployments of `prefect.yaml` registered by `infra/prefect/deploy.sh`, a real process worker,
and `prefect deployment run curate/...` watched to completion; then the published dataset is
loaded back with `datasets`. Flow runs execute in worker subprocesses with their own engines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from datasets import load_dataset

ROOT = Path(__file__).resolve().parents[1]
PREFECT = ROOT / ".venv" / "bin" / "prefect"
SMALL = {"problems.limit": 6, "generate.sampling.n": 4, "frontier.samples": 4}
TINY_ENGINE = {"model": "tiny:teacher", "enforce_eager": True, "block_size": 32}
# The math recipe pointed at the tiny reasoner and bundled problems, key by key: what a user
# overrides to smoke-test a GPU recipe on a laptop.
MATH_ON_TINY = {
    "problems": {"kind": "arithmetic", "split": "demo", "limit": 6},
    "generate.engine": TINY_ENGINE,
    "generate.sampling": {"n": 4, "temperature": 1.0, "max_tokens": 400, "logprobs": 5, "seed": 0},
    "generate.prompt_template": "{problem}",
    "label.completer": TINY_ENGINE,
    "label.judge_engine": TINY_ENGINE,
    "label.rollouts": {"strategy": "binary_search", "k": 4, "max_tokens": 300},
    "label.judge": {"template": "compact", "max_tokens": 400},
    "label.fidelity": {"info_gain": True},
    "pairs.generator": TINY_ENGINE,
    "pairs.next_step": {"candidates": 4, "max_tokens": 48},
    "pairs.rollouts": {"k": 4, "max_tokens": 300},
    "frontier.student": {"model": "tiny:student", "enforce_eager": True, "block_size": 32},
    "frontier.samples": 4,
    "frontier.sampling": {"max_tokens": 400, "temperature": 1.0},
    "frontier.prompt_template": "{problem}",
    "publish": {"target": "local", "path": "dataset"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def prefect_stack(tmp_path_factory):
    """Server + work pool + deployments + worker, as the README's sequence starts them."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "THOUGHTMILL_SCHEDULES_ACTIVE": "false",  # the nightly math run must not fire here
        "THOUGHTMILL_POOL": "thoughtmill-test",
    }
    logs = home / "logs"
    logs.mkdir()
    procs = []
    try:
        server = subprocess.Popen(
            ["bash", "infra/prefect/server.sh"], cwd=ROOT, env=env, start_new_session=True,
            stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(server)
        deploy = subprocess.run(
            ["bash", "infra/prefect/deploy.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        worker = subprocess.Popen(
            ["bash", "infra/prefect/worker.sh"], cwd=ROOT, env=env, start_new_session=True,
            stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(worker)
        yield env, logs
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _run_deployment(env: dict, logs: Path, name: str, params: dict) -> subprocess.CompletedProcess:
    cmd = [str(PREFECT), "deployment", "run", name, "--watch", "--watch-timeout", "900"]
    cmd += [arg for key, value in params.items() for arg in ("--param", f"{key}={json.dumps(value)}")]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=960)
    worker_log = (logs / "worker.log").read_text()[-4000:]
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-2000:]}\nworker:\n{worker_log}"
    assert "Completed" in done.stdout, done.stdout[-3000:]
    return done


def _check_published(out: Path) -> dict:
    run = json.loads((out / "run.json").read_text())
    dataset = Path(run["published"]["path"])
    assert (dataset / "README.md").exists()
    sizes = {}
    for config in run["published"]["configs"]:
        ds = load_dataset(str(dataset), config, split="train")
        sizes[config] = len(ds)
    assert sizes.get("sft", 0) > 0 and sizes.get("prm", 0) > 0, sizes
    return run


def test_deployment_run_curate_demo(prefect_stack, tmp_path):
    env, logs = prefect_stack
    out = tmp_path / "demo"
    _run_deployment(env, logs, "curate/demo", {"out": str(out), "overrides": SMALL})
    run = _check_published(out)
    assert run["recipe"] == "demo"
    assert run["stages"]["generate"]["rows_out"] == SMALL["problems.limit"] * SMALL["generate.sampling.n"]


def test_deployment_run_curate_math_with_overrides(prefect_stack, tmp_path):
    env, logs = prefect_stack
    out = tmp_path / "math"
    _run_deployment(env, logs, "curate/math", {"out": str(out), "overrides": MATH_ON_TINY})
    run = _check_published(out)
    recipe = json.loads((out / "recipe.json").read_text())
    assert run["recipe"] == "math" and recipe["generate"]["engine"]["model"] == "tiny:teacher"
    assert recipe["label"]["rollouts"]["strategy"] == "binary_search"  # the rest of the math recipe holds


def test_unknown_override_key_fails_the_run(prefect_stack):
    env, _ = prefect_stack
    cmd = [str(PREFECT), "deployment", "run", "curate/demo", "--watch", "--watch-timeout", "300"]
    cmd += ["--param", 'overrides={"generate.sampling.temprature": 0.5}']
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=360)
    assert done.returncode != 0 or "Failed" in done.stdout, done.stdout[-2000:]
    assert "Completed" not in done.stdout.split("Flow run")[-1]


def test_math_schedule_is_registered(prefect_stack):
    env, _ = prefect_stack
    done = subprocess.run(
        [str(PREFECT), "deployment", "inspect", "curate/math"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "0 2 * * *" in done.stdout and "'active': False" in done.stdout


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert proc.poll() is None, "the flow ended before the label stage wrote a chunk"
        time.sleep(0.2)
    raise TimeoutError("label stage never wrote a chunk")


def test_kill_during_label_then_rerun_does_not_regenerate(tmp_path):
    """SIGKILL the whole flow once the label stage has written its first chunk; the re-run
    reports generate as complete-and-skipped, leaves the trace shards untouched, finishes the
    label stage's remaining chunks only, and duplicates no row."""
    import pyarrow.parquet as pq

    out = tmp_path / "killed"
    sets = ["problems.limit=6", "generate.sampling.n=4", "label.chunk_size=6", "frontier.samples=4"]
    # what resumes is the point here, not the labelers: the lighter ones keep the two runs short
    sets += ['label.labelers=["symbolic","mc"]', "label.fidelity.info_gain=false", 'pairs.kinds=["trace","fidelity"]']
    cmd = [str(ROOT / ".venv/bin/thoughtmill"), "run", "--recipe", "demo", "--out", str(out)]
    cmd += [arg for s in sets for arg in ("--set", s)]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: any((out / "labeled").glob("*.parquet")), 600, first)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    traces_before = {p.name: p.stat().st_mtime_ns for p in (out / "traces").glob("*.parquet")}
    labeled_before = len(list((out / "labeled").glob("*.parquet")))
    assert traces_before and not (out / "run.json").exists()

    second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["stages"]["generate"]["status"] == "complete, skipped"
    assert {p.name: p.stat().st_mtime_ns for p in (out / "traces").glob("*.parquet")} == traces_before
    label = run["stages"]["label"]
    assert label["status"] == "ran" and label["chunks_skipped"] == labeled_before
    labeled = pq.read_table(out / "labeled").column("trace_id").to_pylist()
    traces = pq.read_table(out / "traces").column("trace_id").to_pylist()
    assert sorted(labeled) == sorted(traces)  # nothing lost, nothing duplicated
    assert "dataset" in second.stdout
