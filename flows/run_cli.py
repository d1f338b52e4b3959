"""`thoughtmill run`: the curate flow behind a quiet terminal.

The terminal gets one line per finished stage and, at the end, a table of the run's statistics
as `run.json` holds them (status, rows in and out, tokens, seconds) and where the outputs are;
the engines' output goes to `<out>/logs/run.log` (`flows/console.py`). Progress is read from
`run.json`, which the flow rewrites after each stage, so the flow itself knows nothing of this.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from flows.console import StageFailed, UsageError, one_line, output_to
from stages.funnel import tokens as token_figures


def tokens_of(name: str, stats: dict) -> int | None:
    """Tokens stage `name` spent, as the run's funnel (the card, the inspector) counts them."""
    spent = token_figures({name: stats}).get(name)
    return spent["total"] if spent else None


def _n(value) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _status(stats: dict) -> str:
    return str(stats.get("status", "ran")).split(",")[-1].strip()  # "complete, skipped" -> "skipped"


def _seconds(stats: dict) -> str:
    s = stats.get("seconds")
    return f"{s:.1f}" if isinstance(s, int | float) else "-"


def progress_line(i: int, total: int, name: str, stats: dict) -> str:
    rows = f"rows {_n(stats.get('rows_in'))} -> {_n(stats.get('rows_out'))}"
    tokens = tokens_of(name, stats)
    spent = f", {_n(tokens)} tokens" if tokens else ""
    return f"thoughtmill: [{i}/{total}] {name:<9} {_status(stats):<8} {rows}{spent}, {_seconds(stats)} s"


def summary_table(stages: dict) -> list[str]:
    """One row per stage of `run.json`'s `stages`, and the totals."""
    rows = [("stage", "status", "rows in", "rows out", "tokens", "seconds")]
    for name, s in stages.items():
        rows.append(
            (name, _status(s), _n(s.get("rows_in")), _n(s.get("rows_out")), _n(tokens_of(name, s)), _seconds(s))
        )
    tokens = sum(t["total"] for t in token_figures(stages).values())
    seconds = sum(s.get("seconds") or 0 for s in stages.values() if isinstance(s.get("seconds"), int | float))
    rows.append(("total", "", "", "", _n(tokens), f"{seconds:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    fmt = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return [fmt(r).rstrip() for r in rows]


class Progress(threading.Thread):
    """Prints a line for each stage as `run.json` (rewritten after every stage) gains it; a
    `run.json` older than this run (a previous run's) is ignored."""

    def __init__(self, run_json: Path, names: list[str], say: Callable[[str], None], since: float) -> None:
        super().__init__(daemon=True)
        self.run_json, self.names, self.say, self.since = run_json, names, say, since
        self.done: list[str] = []
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            self.poll()

    def poll(self) -> dict:
        """Print the stages finished since the last poll; returns run.json's stages."""
        try:
            if self.run_json.stat().st_mtime < self.since:
                return {}
            stages = json.loads(self.run_json.read_text()).get("stages", {})
        except (OSError, ValueError, AttributeError):  # absent yet, or read while being rewritten
            return {}
        with self.lock:
            for i, name in enumerate(self.names, 1):
                if name not in stages:
                    break
                if name not in self.done:
                    self.done.append(name)
                    self.say(progress_line(i, len(self.names), name, stages[name]))
        return stages

    def stop(self) -> dict:
        self.halt.set()
        if self.is_alive():
            self.join()
        return self.poll()


def failed_stage(exc: BaseException, names: list[str] | None = None, done: list[str] = ()) -> str | None:
    """The stage `exc` came from: the innermost `run_stage` frame in its traceback (Prefect
    re-raises a task's own exception), else the first of `names` not `done`; None before any."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        name = tb.tb_frame.f_locals.get("name") if tb.tb_frame.f_code.co_name == "run_stage" else None
        if isinstance(name, str) and (names is None or name in names):
            found = name
        tb = tb.tb_next
    if found or not done or names is None:
        return found
    return next((n for n in names if n not in done), None)


def crashed(exc: BaseException, stage: str | None, log: Path | None) -> StageFailed:
    what = f"stage {stage!r} failed" if stage else "the flow failed before its first stage"
    return StageFailed(f"{what}: {one_line(exc, typed=True)}" + (f"; full log {log}" if log else ""))


@contextlib.contextmanager
def flow_output(what: str, out: Path, verbose: bool) -> Iterator[TextIO]:
    """The terminal of a flow command (eval, improve): the flow's output to `<out>/logs/run.log`
    unless `verbose`; a crash as one line naming its stage and that log. Yields the terminal."""
    log = None if verbose else out / "logs" / "run.log"
    with output_to(log) as terminal:
        if log:
            print(f"thoughtmill: {what} into {out}; the flow's output goes to {log} (--verbose shows it here)",
                  file=terminal, flush=True)  # fmt: skip
        try:
            yield terminal
        except Exception as exc:
            raise crashed(exc, failed_stage(exc), log) from exc


def run(args: argparse.Namespace) -> int:
    try:  # all of it the user's input: a recipe name or path, overrides, a pipeline
        from flows.pipeline import load_pipeline, load_recipe
        from flows.recipe import parse_overrides

        names = list(load_pipeline(args.pipeline).names)
        recipe = load_recipe(args.recipe, parse_overrides(args.set), args.pipeline)
    except Exception as exc:
        raise UsageError(one_line(exc)) from exc
    from flows.curate import curate  # after the recipe is known good: importing Prefect takes seconds

    out = Path(args.out or f"out/{recipe.name}")
    log = None if args.verbose else out / "logs" / "run.log"
    start = time.time()
    with output_to(log) as terminal:
        say = lambda line: print(line, file=terminal, flush=True)
        where = f"the engines' output goes to {log} (--verbose shows it here)" if log else "the engines' output follows"
        say(f"thoughtmill: run {recipe.name!r}: {len(names)} stages into {out}; {where}")
        progress = Progress(out.resolve() / "run.json", names, say, start - 1.0)
        progress.start()
        try:
            summary = curate(recipe, str(out), pipeline=args.pipeline)
        except Exception as exc:
            progress.stop()
            raise crashed(exc, failed_stage(exc, names, progress.done), log) from exc
        stages = progress.stop() or summary["stages"]
        minutes, seconds = divmod(round(time.time() - start), 60)
        say("")
        for line in summary_table(stages):
            say(line)
        pub, report = summary["stages"]["publish"], summary["stages"]["report"]
        dataset = f"https://huggingface.co/datasets/{pub['repo_id']}" if pub.get("repo_id") else pub["path"]
        say(f"thoughtmill: run {recipe.name!r} finished in {minutes}m{seconds:02d}s; output root {summary['out']} "
            "(run.json: stage stats)")  # fmt: skip
        say(f"thoughtmill: dataset {dataset} (configs: {', '.join(pub['configs'])}); card {pub['path']}/README.md")
        say(f"thoughtmill: trace inspector {report['path']} (open it in a browser)")
    return 0
