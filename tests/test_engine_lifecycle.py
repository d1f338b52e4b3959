"""Engines and servers of one process (its pool): closing the ones a stage does not use must leave
the others working, and none may outlive the process.

vLLM's in-process engines (the CPU default) share the process-wide parallel state, so shutting
one down broke the survivors ("pipeline model parallel group is not initialized"): the `improve`
flow hit it when the label stage's teacher judge was closed before pairs used the student. Run in
subprocesses: this session's own pooled engines must not be closed by the test.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.vllm

SCRIPT = """
from stages.engine import EngineConfig, SamplingConfig
from stages.engine.pool import POOL

if __name__ == "__main__":
    tiny = dict(enforce_eager=True, block_size=32, kv_cache_memory_bytes=64 << 20)
    student = EngineConfig(model="tiny:student", **tiny)
    POOL.open(EngineConfig(model="tiny:teacher", **tiny))
    first = POOL.open(student)
    closed = POOL.retain([student])
    engine = POOL.open(student)
    gens = engine.generate([engine.chat_prompt("What is 1 + 2?")], SamplingConfig(n=2, max_tokens=60, seed=1))
    print("RESULT", sorted(closed), engine is not first, [len(s.text) > 0 for s in gens[0].samples])
"""


def test_the_kept_engine_still_generates_after_another_is_closed():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    assert result == "RESULT ['tiny:student', 'tiny:teacher'] True [True, True]"


SERVE_AND_EXIT = """
from stages.engine import EngineConfig, SamplingConfig
from stages.engine.pool import POOL

if __name__ == "__main__":
    tiny = dict(enforce_eager=True, block_size=32, kv_cache_memory_bytes=64 << 20)
    config = EngineConfig(backend="openai", model="tiny:teacher", serve={}, **tiny)
    engine = POOL.open(config, "judge")
    print("GROUP", POOL.serve(config, "judge").proc.pid, flush=True)  # the server the engine reaches
    gens = engine.generate([engine.chat_prompt("What is 1 + 2?")], SamplingConfig(n=1, max_tokens=20, seed=1))
    print("RESULT", len(gens[0].samples[0].text) > 0)
"""


def test_a_served_role_is_stopped_when_its_process_exits():
    """The pool stops its servers at exit: a served role started without any explicit stop
    leaves no process of its server's group once the process that started it returns."""
    done = subprocess.run([sys.executable, "-c", SERVE_AND_EXIT], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    group = next(int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("GROUP"))
    assert "RESULT True" in done.stdout
    left = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True)
    assert left.returncode == 1 and not left.stdout, f"vLLM server processes left: {left.stdout}"
