"""Session-wide fixtures: one real vLLM engine per model per pytest session, offline Prefect."""

from __future__ import annotations

import os
import tempfile
import threading
from collections import Counter
from pathlib import Path

import pytest
from fake_hub import fake_hub  # noqa: F401  (the fixture, for every test file; tests/ is on sys.path)

_HOME = tempfile.mkdtemp(prefix="thoughtmill-prefect-")
os.environ.update(
    {
        "PREFECT_HOME": _HOME,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # One torch thread per process: this session's engines and the background flow run's
        # share 2 cores, and torch's default (a spin-waiting OpenMP thread per core in every
        # process) made each op wait for a descheduled thread (stages.executor.share_cores).
        "OMP_NUM_THREADS": "1",
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
    from stages.engine import EngineConfig
    from stages.engine.pool import POOL

    return POOL.open(EngineConfig(model="tiny:teacher", **TINY))


@pytest.fixture(scope="session")
def student_engine():
    from stages.engine import EngineConfig
    from stages.engine.pool import POOL

    return POOL.open(EngineConfig(model="tiny:student", **TINY))


@pytest.fixture
def keep_session_engines():
    """Stages run through the flow's `run_stage` close the in-process engines they do not use
    (all of them, on CPU); this session's shared engines must outlive such runs, since later
    tests use them and an engine started twice fails the session."""
    from stages.engine.pool import POOL

    POOL.keep_engines = True
    yield
    POOL.keep_engines = False


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared sample data not found at {SHARED_DATA}")
    return SHARED_DATA


def pytest_sessionfinish(session, exitstatus):
    """A pytest session must start each model's engine at most once (engine start-up is slow)."""
    from stages.engine.pool import POOL

    for bg in _BACKGROUND:
        bg.join(timeout=1800)
        if bg.stack is not None:
            bg.stack.stop()

    started = Counter(config.model for config in POOL.open_configs())
    POOL.close()
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
    # One process: it shares this session's 2 cores, so the recipe's second worker (and its
    # own engine starts) would only add work; the fault tests run stages with two workers.
    "executor": {"kind": "local", "tasks": 1, "workers": 1},
}


class StackAndDemoRun(threading.Thread):
    """The Prefect stack and (`with_demo`) the `curate/demo` deployment run, started in the
    background when the session collects a test that needs them: the flow run (in the worker's
    subprocess, with its own engines) overlaps the in-process tests that come first."""

    def __init__(self, home: Path, out: Path, with_demo: bool) -> None:
        super().__init__(daemon=True)
        self.home, self.out, self.with_demo = home, out, with_demo
        self.stack = None
        self.stack_ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from prefect_stack import run_deployment, start_stack  # tests/ is on sys.path (rootdir conftest)

        try:
            self.stack = start_stack(self.home)
            self.stack_ready.set()
            if self.with_demo:
                run_deployment(self.stack, "curate/demo", {"out": str(self.out), "overrides": DEMO_OVERRIDES})
        except BaseException as exc:  # raised again by the fixtures that wait for it
            self.error = exc
        finally:
            self.stack_ready.set()


_BACKGROUND: list[StackAndDemoRun] = []


def _background(with_demo: bool = True) -> StackAndDemoRun:
    """The session's background stack (and demo run), started on first use."""
    if not _BACKGROUND:
        base = Path(tempfile.mkdtemp(prefix="thoughtmill-flow-"))
        _BACKGROUND.append(StackAndDemoRun(base / "prefect-home", base / "demo" / "out", with_demo))
        _BACKGROUND[0].start()
    return _BACKGROUND[0]


@pytest.hookimpl(trylast=True)  # after `-k`/`-m` deselection: only what will run counts
def pytest_collection_modifyitems(session, config, items):
    """Start the stack (and the demo run, when a test reads it) now, if any test will need them."""
    needed = {name for item in items for name in item.fixturenames}
    if {"demo_run", "prefect_stack"} & needed:
        _background(with_demo="demo_run" in needed)


@pytest.fixture(scope="session")
def prefect_stack():
    """A real Prefect server, the deployments of `prefect.yaml` and a process worker."""
    bg = _background()
    bg.stack_ready.wait()
    if bg.stack is None:
        raise RuntimeError("the Prefect stack did not start") from bg.error
    return bg.stack


@pytest.fixture(scope="session")
def demo_run():
    """`prefect deployment run curate/demo` on a reduced demo recipe, once per session, through
    the real server and worker (the flow run starts its own engines in the worker's subprocess):
    later tests read its stage outputs. Returns (output root, run.json, recipe)."""
    import json

    from flows.pipeline import load_recipe

    bg = _background()
    bg.join(timeout=1800)
    if not bg.with_demo:
        raise RuntimeError("the session started the Prefect stack without the demo run (no collected test read it)")
    if bg.error is not None or bg.is_alive():
        raise RuntimeError("the curate/demo deployment run failed") from bg.error
    return bg.out, json.loads((bg.out / "run.json").read_text()), load_recipe("demo", DEMO_OVERRIDES)
