"""Session-wide fixtures: one real vLLM engine per model per pytest session, offline Prefect."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="thoughtmill-prefect-")
os.environ.update(
    {
        "PREFECT_HOME": _HOME,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Prefect's ephemeral API server gets 20 s to start by default: on 2 busy cores (engines
        # starting beside it) that is not always enough, and a flow then fails before it begins.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# The demo recipe's engine settings: a flow run in this process reuses the session's engines.
TINY = {"enforce_eager": True, "block_size": 32, "kv_cache_memory_bytes": 512 << 20}


@pytest.fixture(scope="session")
def teacher_engine():
    from stages.engine import EngineConfig, shared_engine

    return shared_engine(EngineConfig(model="tiny:teacher", **TINY))


@pytest.fixture(scope="session")
def student_engine():
    from stages.engine import EngineConfig, shared_engine

    return shared_engine(EngineConfig(model="tiny:student", **TINY))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared sample data not found at {SHARED_DATA}")
    return SHARED_DATA


def pytest_sessionfinish(session, exitstatus):
    """A pytest session must start each model's engine at most once (engine start-up is slow)."""
    from stages.engine import close_shared_engines, started_engines

    started = Counter(started_engines())
    close_shared_engines()
    twice = {m: n for m, n in started.items() if n > 1}
    if twice:
        print(f"\nengines started more than once in this session: {twice}")
        session.exitstatus = 1


DEMO_OVERRIDES = {
    "problems.limit": 12,
    "generate.sampling.n": 4,
    "generate.chunk_size": 6,
    "frontier.samples": 4,
    "pairs.next_step.prefixes_per_problem": 2,
}


@pytest.fixture(scope="session")
def prefect_stack(tmp_path_factory):
    """A real Prefect server, the deployments of `prefect.yaml` and a process worker."""
    from prefect_stack import prefect_stack as start  # tests/ is on sys.path (rootdir conftest)

    with start(tmp_path_factory.mktemp("prefect-home")) as stack:
        yield stack


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, prefect_stack):
    """`prefect deployment run curate/demo` on a reduced demo recipe, once per session, through
    the real server and worker (the flow run starts its own engines in the worker's subprocess):
    later tests read its stage outputs. Returns (output root, run.json, recipe)."""
    import json

    from prefect_stack import run_deployment

    from flows.recipe import load_recipe

    root = tmp_path_factory.mktemp("demo") / "out"
    run_deployment(prefect_stack, "curate/demo", {"out": str(root), "overrides": DEMO_OVERRIDES})
    return root, json.loads((root / "run.json").read_text()), load_recipe("demo", DEMO_OVERRIDES)
