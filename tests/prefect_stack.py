"""A real Prefect stack for tests, started as the README's sequence starts it: a server (SQLite,
its own PREFECT_HOME), the deployments of `prefect.yaml` registered by `infra/prefect/deploy.sh`,
and a process worker; plus `prefect deployment run ... --watch` and the worker's flow-run
processes (to kill one mid-run)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
PREFECT = ROOT / ".venv" / "bin" / "prefect"


@dataclass
class Stack:
    env: dict
    logs: Path
    worker_pid: int
    procs: list[subprocess.Popen]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)


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


def start_stack(home: Path) -> Stack:
    """Server + work pool + deployments + worker; `Stack.stop()` ends them."""
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "THOUGHTMILL_SCHEDULES_ACTIVE": "false",  # the nightly math run must not fire here
        "THOUGHTMILL_POOL": "thoughtmill-test",
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # default 10 s: each flow run would wait ~5 s to be picked up
    }
    logs = home / "logs"
    logs.mkdir(parents=True)
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            subprocess.Popen(
                ["bash", "infra/prefect/server.sh"],
                cwd=ROOT,
                env=env,
                start_new_session=True,
                stdout=open(logs / "server.log", "w"),
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
        deploy = subprocess.run(
            ["bash", "infra/prefect/deploy.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        worker = subprocess.Popen(
            ["bash", "infra/prefect/worker.sh"], cwd=ROOT, env=env, start_new_session=True,
            stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(worker)
    except BaseException:
        for proc in reversed(procs):
            _stop(proc)
        raise
    return Stack(env, logs, worker.pid, procs)


def deployment_command(name: str, params: dict, watch_timeout: int = 900) -> list[str]:
    cmd = [str(PREFECT), "deployment", "run", name, "--watch", "--watch-interval", "1"]
    cmd += ["--watch-timeout", str(watch_timeout)]
    return cmd + [arg for key, value in params.items() for arg in ("--param", f"{key}={json.dumps(value)}")]


def run_deployment(stack: Stack, name: str, params: dict) -> subprocess.CompletedProcess:
    """`prefect deployment run <name> --watch`, which must end with the run Completed."""
    done = subprocess.run(
        deployment_command(name, params), cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=960
    )
    worker_log = (stack.logs / "worker.log").read_text()[-4000:]
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-2000:]}\nworker:\n{worker_log}"
    assert "Completed" in done.stdout, done.stdout[-3000:]
    return done


def flow_run_processes(stack: Stack) -> list[psutil.Process]:
    """The worker's flow-run subprocesses (Prefect gives each its PREFECT__FLOW_RUN_ID)."""
    found = []
    for proc in psutil.Process(stack.worker_pid).children(recursive=True):
        try:
            if "PREFECT__FLOW_RUN_ID" in proc.environ():
                found.append(proc)
        except psutil.Error:
            continue
    return found
