"""Engines of one process: closing the ones a stage does not use must leave the others working.

vLLM's in-process engines (the CPU default) share the process-wide parallel state, so shutting
one down broke the survivors ("pipeline model parallel group is not initialized"): the `improve`
flow hit it when the label stage's teacher judge was closed before pairs used the student. Run in
a subprocess: this session's own shared engines must not be closed by the test.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.vllm

SCRIPT = """
from stages.engine import EngineConfig, SamplingConfig, retain_engines, shared_engine

if __name__ == "__main__":
    tiny = dict(enforce_eager=True, block_size=32, kv_cache_memory_bytes=64 << 20)
    student = EngineConfig(model="tiny:student", **tiny)
    shared_engine(EngineConfig(model="tiny:teacher", **tiny))
    first = shared_engine(student)
    closed = retain_engines([student])
    engine = shared_engine(student)
    gens = engine.generate([engine.chat_prompt("What is 1 + 2?")], SamplingConfig(n=2, max_tokens=60, seed=1))
    print("RESULT", sorted(closed), engine is not first, [len(s.text) > 0 for s in gens[0].samples])
"""


def test_the_kept_engine_still_generates_after_another_is_closed():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    assert result == "RESULT ['tiny:student', 'tiny:teacher'] True [True, True]"
