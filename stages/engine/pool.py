"""`EnginePool`: the one owner of a process's model engines and model servers (`POOL`).

Engine start-up is slow (tens of seconds on a CPU, minutes for a large model on GPUs), so the
pool keeps one engine per distinct config and one vLLM server per distinct served role: stages
that run in the same process (local executor with one worker, a test session) share them instead
of starting their own. Two engines compete for the same GPU memory, so before a stage starts its
engines the flow has the pool close those the stage does not use (`retain`). A worker process
closes its pool when its rank ends, and every pool is closed at exit: no server's process group
and no engine core outlives the process that started it.

A debugger gets a server for a recipe role, a checkpoint or a tiny model in one line, stopped
when it exits: `url = POOL.serve("tiny:teacher").url`.
"""

from __future__ import annotations

import atexit
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from stages.engine import Engine, EngineConfig, StepRewardEngine, build_engine, engine_key
from stages.engine.server import VLLMServer, check_reachable, standalone


class EnginePool:
    """Engines opened by config and servers started by role, shared until `retain` closes them or
    `close` (at exit too) stops everything. A process has one (`POOL`); an app or a test that
    wants its servers stopped at a point of its own holds another (`with EnginePool() as pool:`)."""

    def __init__(self) -> None:
        self._engines: dict[str, Engine | StepRewardEngine] = {}  # engine key -> in-process engine or client
        self._servers: dict[str, VLLMServer] = {}  # served config -> its server
        self._pid = os.getpid()  # a forked child must not stop the servers of the pool it inherited
        # `retain` leaves the engines open (servers still stop): a test session's shared engines
        # outlive the stages it runs through the flow
        self.keep_engines = False
        atexit.register(self.close)

    def open(self, config: EngineConfig, role: str | None = None) -> Engine | StepRewardEngine:
        """The engine for `config`, started on first use: in-process (one per engine key; a chat
        template is a view of it), or a client of the role's server (`serve:`, started or reused)
        or of the server at its `base_url` (checked reachable, `role` in the error)."""
        if config.serve is not None:
            config = self.resolve(config, role)
        key = engine_key(config)
        if key not in self._engines:
            if config.backend == "openai":
                check_reachable(config, role)
            self._engines[key] = build_engine(EngineConfig.model_validate_json(key))
        engine = self._engines[key]
        if config.backend == "vllm" and config.chat_template:
            return engine.with_chat_template(config.chat_template)
        return engine

    def resolve(self, config: EngineConfig, role: str | None, log_dir: Path | None = None) -> EngineConfig:
        """The config a stage (and its worker processes) is given for `role`: a served role's
        pointed at its server (started on first use, its log under `log_dir`), so workers reach it
        like any `base_url` role; a role served elsewhere checked reachable now; others as given."""
        if config.serve is not None:
            return _client(config, self._start(config, role or "model", log_dir))
        if config.backend == "openai":
            check_reachable(config, role)
        return config

    def serve(
        self, target: EngineConfig | str, role: str | None = None, port: int | None = None, log_dir: Path | None = None
    ) -> VLLMServer:
        """A running server for `target` (a role's engine config, a checkpoint path or `tiny:NAME`),
        started or reused, as a long-lived server of its own (`standalone`), stopped with the pool."""
        config = EngineConfig(model=target) if isinstance(target, str) else target
        name = role or re.sub(r"[^A-Za-z0-9._-]+", "-", config.model).strip("-")
        return self._start(standalone(config, port), name, log_dir)

    def _start(self, config: EngineConfig, role: str, log_dir: Path | None) -> VLLMServer:
        key = config.model_dump_json()
        server = self._servers.get(key)
        if server is not None and server.alive():
            return server
        if server is not None:
            server.stop()  # what is left of its process group
        server = self._servers[key] = VLLMServer(config, role, log_dir)
        try:
            server.start()
        except BaseException:  # an interrupted start too: nothing of it may be left running
            del self._servers[key]
            server.stop()
            raise
        return server

    def retain(self, keep: Iterable[EngineConfig]) -> list[str]:
        """Stop the servers and close the engines that none of `keep` (a stage's engine configs)
        uses, before the stage starts its own: they hold memory its engines need. Returns the
        roles of the servers stopped and the models of the engines closed."""
        keep = list(keep)
        served = {c.model_dump_json() for c in keep if c.serve is not None}
        closed = []
        for key in [k for k in self._servers if k not in served]:
            server = self._servers.pop(key)
            closed.append(server.role)
            server.stop()
        if self.keep_engines:
            return closed
        wanted = {engine_key(self._as_opened(c)) for c in keep}
        doomed = [k for k in self._engines if k not in wanted]
        if doomed and any(getattr(engine, "in_process", False) for engine in self._engines.values()):
            # shutting one in-process vLLM engine down tears down the process-wide parallel state the
            # others run on ("pipeline model parallel group is not initialized"): close them all, and
            # the kept ones start again on their next use
            doomed = list(self._engines)
        for key in doomed:
            closed.append(EngineConfig.model_validate_json(key).model)
            self._engines.pop(key).close()
        return closed

    def live_roles(self, roles: Mapping[str, EngineConfig]) -> list[str]:
        """The roles (role -> config) whose engine is open in this pool (equal settings share one)."""
        return sorted(role for role, config in roles.items() if engine_key(self._as_opened(config)) in self._engines)

    def open_configs(self) -> list[EngineConfig]:
        """The configs of the engines open now."""
        return [EngineConfig.model_validate_json(k) for k in self._engines]

    def _as_opened(self, config: EngineConfig) -> EngineConfig:
        """`config` as its engine is keyed: a served role's as the client of its running server."""
        server = self._servers.get(config.model_dump_json()) if config.serve is not None else None
        return _client(config, server) if server is not None else config

    def stop_servers(self) -> list[str]:
        """Stop every server of the pool (a run's served roles never outlive it); returns their roles."""
        servers, self._servers = list(self._servers.values()), {}
        if os.getpid() == self._pid:
            for server in servers:
                server.stop()
        return [s.role for s in servers]

    def close(self) -> None:
        """Stop every server (its whole process group) and close every engine; the pool stays
        usable. Registered at exit; a worker process calls it when its rank ends."""
        self.stop_servers()
        while self._engines:
            self._engines.popitem()[1].close()

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _client(config: EngineConfig, server: VLLMServer) -> EngineConfig:
    return config.model_copy(update={"serve": None, "base_url": server.url, "model": config.request_model})


def in_worker_process() -> bool:
    """True in an executor's worker process (datatrove's pool uses `multiprocess`, a fork of
    `multiprocessing`): its pool must be closed when the rank ends, since the pool ends its
    workers with SIGTERM, which skips every exit hook and would orphan the engine processes."""
    import multiprocessing

    names = [multiprocessing.current_process().name]
    try:
        import multiprocess

        names.append(multiprocess.current_process().name)
    except ImportError:
        pass
    return any(name != "MainProcess" for name in names)


POOL = EnginePool()  # this process's pool: the flows, the stages, the CLI and the benches use it
