"""math-verify in a child process with a hard deadline, for callers off the main thread.

math-verify bounds its work with `signal.alarm`, which only the main thread can use: a stage run
in a thread (a Prefect task runner, a bench harness, a thread pool) had no bound at all, and one
answer such as `\\binom{10^{9}}{5 \\cdot 10^{8}}` or `100!!` held the worker forever (with the
GIL, so nothing in-process can even report it). A child process can always be killed: the caller
waits at most the deadline for its reply, then kills it (the next call starts a fresh one) and
raises `VerifyTimeout`. The child runs math-verify on its own main thread, so its signal
timeouts still end ordinary slow work without a restart.

One child per process (started on first use, about a second to import sympy), shared by threads
under a lock; it is a plain subprocess, so daemonic pool workers (datatrove's) can start it too.
Requests and replies are JSON lines on its stdin/stdout.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from stages.verification.equivalence import math_equal_here

STARTUP_S = 120.0  # importing sympy on a loaded machine; not counted in a call's deadline
_ROOT = str(Path(__file__).resolve().parents[2])  # so `-m stages.verification.isolated` imports


class VerifyTimeout(TimeoutError):
    """The child did not answer within the deadline; it was killed."""


class _Child:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stages.verification.isolated"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=_ROOT,
        )
        self.pid, self.buffer = os.getpid(), b""
        if self._read_line(time.monotonic() + STARTUP_S) != {"ready": True}:
            self.kill()
            raise RuntimeError("the math-verify child process did not start")

    def _read_line(self, deadline: float) -> dict | None:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            block = os.read(fd, 65536)
            if not block:  # the child died
                return None
            self.buffer += block
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def call(self, gold: str, predicted: str, timeout_s: float) -> bool:
        request = {"gold": gold, "predicted": predicted, "timeout": timeout_s}
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        reply = self._read_line(time.monotonic() + 3 * timeout_s + 1)
        if reply is None:
            self.kill()
            raise VerifyTimeout(f"math-verify gave no answer within {3 * timeout_s + 1:.0f} s; child killed")
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return bool(reply["equal"])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


_LOCK = threading.Lock()
_CHILD: _Child | None = None


def math_equal(gold: str, predicted: str, timeout_s: float) -> bool:
    """math-verify's verdict from the child; `VerifyTimeout` past 3 x `timeout_s` + 1 s (two
    parses and one comparison, each bounded by `timeout_s` inside the child)."""
    global _CHILD
    with _LOCK:
        if _CHILD is None or _CHILD.pid != os.getpid() or _CHILD.proc.poll() is not None:
            _CHILD = _Child()  # first use, after a kill, or in a forked process
        child = _CHILD
        try:
            return child.call(gold, predicted, timeout_s)
        except (VerifyTimeout, OSError):
            _CHILD = None
            raise


@atexit.register
def _shutdown() -> None:
    if _CHILD is not None and _CHILD.pid == os.getpid():
        _CHILD.kill()


def serve() -> None:
    """The child: answer JSON requests, one per line, until stdin closes. Replies go to the
    original stdout; anything a library prints goes to stderr instead, so it cannot corrupt them."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    def reply(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    math_equal_here("1", "1", 5)  # warm sympy's lazy imports before the first timed call
    reply({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            seconds = max(1, int(-(-request["timeout"] // 1)))
            reply({"equal": bool(math_equal_here(request["gold"], request["predicted"], seconds))})
        except BaseException as exc:  # noqa: BLE001 - math-verify's TimeoutException is a BaseException
            reply({"error": f"{type(exc).__name__}: {exc}"[:500]})


if __name__ == "__main__":
    serve()
