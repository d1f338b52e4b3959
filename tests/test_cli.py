"""The command line's terminal: one-line errors with exit code 2, and a quiet run that ends with
its summary (the engines' output in the run's log, not on the terminal)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import main
from flows.run_cli import Progress, failed_stage, progress_line, summary_table

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, timeout: int = 120, **kwargs) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "flows.cli", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kwargs)


def test_an_unknown_recipe_is_one_line_and_exit_2(tmp_path):
    done = _cli("run", "--recipe", "no-such-recipe", "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("thoughtmill: error: no recipe 'no-such-recipe'; known recipes: [")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()  # nothing started


@pytest.mark.parametrize(
    ("sets", "says"),
    [
        (["problems.limt=3"], "thoughtmill: error: problems.limt: Extra inputs are not permitted"),
        (["problems.limit"], "thoughtmill: error: override 'problems.limit' is not key=value"),
        (["generate.sampling.n=many"], "thoughtmill: error: generate.sampling.n: Input should be a valid integer"),
        (["label.roles.judge=nobody"], "thoughtmill: error: recipe 'demo': stage 'label' uses model role 'nobody'"),
    ],
    ids=["unknown-key", "no-value", "bad-type", "undefined-role"],
)
def test_a_bad_override_is_one_line_and_exit_2(sets, says, capsys, tmp_path):
    argv = ["run", "--out", str(tmp_path)] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(says) and captured.err.count("\n") == 1 and captured.out == ""


def test_debug_shows_the_traceback_and_argument_errors_are_one_line(capsys):
    assert main(["--debug", "run", "--recipe", "no-such-recipe"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("thoughtmill: error: no recipe")
    assert main(["run", "--recipe", "no-such-recipe", "--debug"]) == 2  # after the command too
    assert "Traceback" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--no-such-flag"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith("thoughtmill: error: unrecognized arguments: --no-such-flag")


def test_quiet_env_is_restored_after_a_command(monkeypatch, capsys):
    monkeypatch.delenv("VLLM_LOGGING_LEVEL", raising=False)
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")  # the user's own: kept
    assert main(["pipeline"]) == 0
    assert "VLLM_LOGGING_LEVEL" not in os.environ and os.environ["TRANSFORMERS_VERBOSITY"] == "info"


STAGES = {
    "problems": {"status": "ran", "rows_out": 48, "seconds": 0.3},
    "generate": {"status": "ran", "rows_in": 48, "rows_out": 384, "tokens_generated": 1000, "seconds": 70.0},
    "label": {"status": "complete, skipped", "mc_tokens": 200, "judge_tokens": 30, "seconds": 0.0},
}


def test_progress_lines_and_summary_table_read_run_json(tmp_path):
    assert progress_line(2, 8, "generate", STAGES["generate"]) == (
        "thoughtmill: [2/8] generate  ran      rows 48 -> 384, 1,000 tokens, 70.0 s"
    )
    table = summary_table(STAGES)
    assert table[0].split() == ["stage", "status", "rows", "in", "rows", "out", "tokens", "seconds"]
    assert table[3].split() == ["label", "skipped", "-", "-", "230", "0.0"]
    assert table[-1].split() == ["total", "1,230", "70.3"]

    run_json, lines = tmp_path / "run.json", []
    run_json.write_text(json.dumps({"stages": STAGES}))
    os.utime(run_json, (0, 0))  # a previous run's: not this run's progress
    progress = Progress(run_json, list(STAGES), lines.append, since=1.0)
    assert progress.poll() == {} and lines == []
    run_json.write_text(json.dumps({"stages": {k: STAGES[k] for k in ("problems", "generate")}}))
    progress.poll()
    progress.poll()
    assert [line.split()[1:3] for line in lines] == [["[1/3]", "problems"], ["[2/3]", "generate"]]


def test_a_crash_is_attributed_to_the_stage_that_raised():
    def run_stage(pipeline, name):  # named as the flow's, which every stage runs under
        raise RuntimeError("engine died")

    with pytest.raises(RuntimeError) as caught:
        run_stage(None, "label")
    names = ["problems", "generate", "label"]
    assert failed_stage(caught.value, names, ["problems"]) == "label"
    assert failed_stage(RuntimeError("x"), names, ["problems"]) == "generate"  # no frame: the next one
    assert failed_stage(RuntimeError("x"), names, []) is None  # before the first stage
    assert failed_stage(caught.value) == "label" and failed_stage(RuntimeError("x")) is None  # any pipeline's


@pytest.mark.vllm
def test_a_small_quiet_run_prints_a_line_per_stage_and_the_summary(tmp_path):
    """The demo recipe cut to two problems, in one process: vLLM, Prefect and datatrove all log,
    and none of it may reach the terminal (the full demo, `make run`, prints ~25 lines)."""
    sets = ["problems.limit=2", "problems.shard_size=2", "generate.sampling.n=2", "generate.chunk_size=2",
            "executor.tasks=1", "executor.workers=1", "label.rollouts.k=2", "pairs.rollouts.k=2",
            "frontier.samples=2"]  # fmt: skip
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "VLLM_LOGGING_LEVEL")}  # the CLI sets
    done = _cli("run", "--out", str(out), *[a for s in sets for a in ("--set", s)], timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:] + (out / "logs" / "run.log").read_text()[-3000:]
    lines = done.stdout.splitlines()
    assert done.stderr == "" and len(lines) <= 30, done.stdout
    assert [line.split()[1] for line in lines if line.startswith("thoughtmill: [")] == [f"[{i}/8]" for i in range(1, 9)]
    assert lines[-4].startswith("total") and lines[-1].startswith("thoughtmill: trace inspector")
    assert not any(word in done.stdout for word in ("WARNING", "INFO", "Traceback", "vllm", "datatrove"))
    log = (out / "logs" / "run.log").read_text()
    assert "Launching pipeline" in log  # datatrove's workers wrote there, not to the terminal
