"""Secrets stay out of every artifact; recipe output paths cannot leave the output root.

The Hub client side (cards, commits, 401/500 errors, log lines) is covered in test_publish.py;
here the whole flow re-runs with a token in the environment and pasted into the recipe's
description, and every file of the run, the Prefect artifact and the logs are searched for it.
"""

from __future__ import annotations

import shutil

import pytest
from pydantic import ValidationError

from flows.recipe import load_recipe
from stages.publish.stage import PublishConfig, publish

TOKEN = "hf_" + "Zq3" * 12  # shaped like a real token, so the scrubber has to recognise it


@pytest.mark.parametrize("path", ["../elsewhere", "/etc/thoughtmill", "dataset/../../x", "", "C:\\data"])
def test_publish_paths_outside_the_output_root_are_refused(path):
    with pytest.raises(ValidationError, match="publish.path"):
        PublishConfig(path=path)
    with pytest.raises(ValidationError, match="publish.path"):
        load_recipe("demo", {"publish.path": path})


def test_a_symlink_out_of_the_output_root_is_refused(tmp_path):
    root, outside = tmp_path / "run", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the output root"):
        publish({}, {}, PublishConfig(path="link/dataset"), root)
    assert not any(outside.iterdir())


def test_a_recipe_cannot_carry_a_token():
    with pytest.raises(ValidationError, match="token"):
        load_recipe("demo", {"publish.token": TOKEN})


def test_a_token_never_reaches_run_files_artifacts_or_logs(demo_run, tmp_path, monkeypatch, caplog, capsys):
    from prefect.client.orchestration import get_client

    from flows.curate import curate

    source, _, recipe = demo_run
    root = tmp_path / "run"
    shutil.copytree(source, root)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    pasted = recipe.model_copy(update={"description": f"pasted by mistake: {TOKEN}"})
    summary = curate(pasted, str(root))
    assert all(s.get("status") == "complete, skipped" for n, s in summary["stages"].items() if n != "problems")
    leaks = [p for p in root.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert "hf_***" in (root / "recipe.json").read_text()  # the pasted token was there, and scrubbed
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    assert artifacts and all(TOKEN not in str(a.data) for a in artifacts)
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err + caplog.text
