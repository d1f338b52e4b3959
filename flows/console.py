"""What the command line shows: one-line errors, quiet engines, and the full output in a log file.

By default the engines' chatter stays off the terminal: environment variables quiet vLLM,
transformers, torch's C++ warnings and Python warnings in this process and in every process it
starts (datatrove's worker processes, vLLM's engine cores, served roles), and `thoughtmill run`
sends file descriptors 1 and 2 (inherited by those processes too, so nothing escapes, datatrove's
and Prefect's logs included) to `<out>/logs/run.log`, writing its own lines to the terminal.
`--verbose` leaves all of it as the libraries have it; `--debug` adds tracebacks to errors.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import yaml

# set only where the user has not: an explicit VLLM_LOGGING_LEVEL=INFO still wins
QUIET_ENV = {
    "VLLM_LOGGING_LEVEL": "ERROR",  # read by vLLM in each process it starts (engine cores too)
    "TRANSFORMERS_VERBOSITY": "error",
    "TORCH_CPP_LOG_LEVEL": "ERROR",  # torch's C++ warnings ("[W... utils.cpp] NUMA binding")
    "PYTHONWARNINGS": "ignore",  # FutureWarnings of libraries, in child interpreters
}
# errors a user fixes by changing the command line, the recipe or a path: exit 2, no traceback
OPTIONAL = {"trl", "ray", "pytest"}  # packages of the `test` and `ray` extras, installed by `make setup`
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, yaml.YAMLError, ModuleNotFoundError)


class UsageError(Exception):
    """A command's input is wrong (a recipe, an override, a path): exit 2."""


class StageFailed(Exception):
    """A stage crashed; the message names it, the reason and where the full log is: exit 1."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (its default prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"thoughtmill: error: {message} (see `{self.prog} --help`)\n")


class CommandParser(Parser):
    """A command's parser: it takes `--verbose` and `--debug` too, with no default of its own, so
    that the flags given before the command are not reset by it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        add_output_flags(self, default=argparse.SUPPRESS)


def add_output_flags(parser: argparse.ArgumentParser, default=False) -> None:
    parser.add_argument("--verbose", action="store_true", default=default,
                        help="show the engines' logs (vLLM, Prefect, datatrove) instead of only progress")  # fmt: skip
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks of errors")


def one_line(exc: BaseException, typed: bool = False) -> str:
    """An exception as one line: a recipe's validation errors as `key: message`, others by their
    first line (a server's failure quotes its log's tail after it), after their type where it
    says something (`typed`: always; a crash's reason)."""
    if isinstance(exc, UsageError | StageFailed):
        return str(exc)  # made one line already, its end (a log's path) kept
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__name__ == "ValidationError":
        parts = []
        for e in errors(include_url=False):
            where = ".".join(str(p) for p in e.get("loc", ()))
            msg = e["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if where else msg)
        text = "; ".join(parts)
    else:
        lines = [s for s in str(exc).splitlines() if s.strip()]
        text = lines[0].strip() if lines else ""
        plain = isinstance(exc, USER_ERRORS) and not isinstance(exc, ModuleNotFoundError)
        if typed or not plain:
            text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        if isinstance(exc, ModuleNotFoundError) and exc.name in OPTIONAL:  # `make run` leaves them out
            text += " (`make setup` installs the optional packages: TRL, Ray, the test tools)"
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


def report(exc: BaseException, debug: bool) -> int:
    """Print `exc` for the user and return the exit code: 2 for input errors, 1 for crashes."""
    code = 2 if isinstance(exc, (UsageError, *USER_ERRORS)) else 1
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    hint = "" if debug or code == 2 else " (--debug shows the traceback)"
    print(f"thoughtmill: error: {one_line(exc)}{hint}", file=sys.stderr, flush=True)
    return code


@contextlib.contextmanager
def quiet_env(verbose: bool) -> Iterator[None]:
    """QUIET_ENV for the command's duration (restored after, for callers that call `main` in
    process, like tests), and Python warnings off in this process."""
    if verbose:
        yield
        return
    before = {k: os.environ.get(k) for k in QUIET_ENV}
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def output_to(log: Path | None) -> Iterator[TextIO]:
    """File descriptors 1 and 2 to `log` for the block (None: left alone); yields a stream to the
    terminal's stdout. At the fd level, so that child processes, C++ code and loggers bound to
    sys.stderr at import all write to the log."""
    if log is None:
        yield sys.stdout
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    # appended to: a re-run after a crash must not wipe the crash's log
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, f"\n===== thoughtmill {' '.join(sys.argv[1:])} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    try:
        yield terminal
    finally:
        # Prefect stops its temporary server at exit with an INFO line: keep it off the terminal
        logging.getLogger("prefect").setLevel(logging.WARNING)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in saved:
            os.close(f)
        terminal.close()
