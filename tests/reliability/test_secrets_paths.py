"""Secrets stay out of every artifact; recipe output paths cannot leave the output root or
replace the run's own data.

The Hub client side (cards, commits, 401/500 errors echoing the Authorization header, the client's
debug logs) is covered in test_publish.py with a loopback Hub; here the `curate` flow runs with a
token in the environment and pasted into the recipe's description (its stages replaced by
stand-ins, so no model runs), and every file of the run, the Prefect artifact and the logs are
searched for it.
"""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from flows.pipeline import PIPELINE, load_recipe
from infra.reliability.synthetic import write_synthetic_run
from stages.dataset.hub import resolve_token
from stages.label.stage import Label, LabelConfig
from stages.paths import inside_root, relative_path
from stages.publish.stage import PublishConfig, publish

TOKEN = "hf_" + "Zq3" * 12  # shaped like a real token, so the scrubber has to recognise it


@pytest.mark.parametrize(
    "path", ["../elsewhere", "/etc/thoughtmill", "dataset/../../x", "", "C:\\data", "..\\x", ".", "./", "a/.."]
)
def test_publish_paths_outside_the_output_root_are_refused(path):
    with pytest.raises(ValidationError, match="publish.path"):
        PublishConfig(path=path)
    with pytest.raises(ValidationError, match="publish.path"):
        load_recipe("demo", {"publish.path": path})


@pytest.mark.parametrize("path", ["dataset", "out/v1", "my dataset", "./dataset"])
def test_paths_inside_the_output_root_are_accepted(path, tmp_path):
    assert PublishConfig(path=path).path == path
    assert inside_root(tmp_path, path, "publish.path") == tmp_path / path
    assert relative_path(path, "k") == path


def test_a_symlink_out_of_the_output_root_is_refused(tmp_path):
    root, outside = tmp_path / "run", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    (root / "dataset").symlink_to(outside / "dataset")  # the destination itself, pointing out
    (root / "here").symlink_to(root)  # a symlink back to the root
    for path in ("link/dataset", "dataset"):
        with pytest.raises(ValueError, match=f"publish.path='{path}'.*outside the output root"):
            publish({}, {}, PublishConfig(path=path), root)
    with pytest.raises(ValueError, match="publish.path='here'.*the output root itself"):
        publish({}, {}, PublishConfig(path="here"), root)
    assert not any(outside.iterdir())


def test_publishing_never_replaces_the_runs_own_data(tmp_path):
    """`publish_local` swaps its folder wholesale: a path naming a stage's folder (or a file) is
    refused instead of deleting the shards; an earlier published dataset is replaced."""
    root = tmp_path / "run"
    (root / "labeled").mkdir(parents=True)
    (root / "labeled" / "00000.parquet").write_bytes(b"shards")
    (root / "run.json").write_text("{}")
    for path in ("labeled", "run.json"):
        with pytest.raises(ValueError, match=f"publish.path='{path}'.*refusing to replace it"):
            publish({}, {}, PublishConfig(path=path), root)
    assert (root / "labeled" / "00000.parquet").read_bytes() == b"shards" and (root / "run.json").is_file()
    first = publish({}, {"description": "v1"}, PublishConfig(path="dataset"), root)
    publish({}, {"description": "v2"}, PublishConfig(path="dataset"), root)  # its own earlier output: replaced
    assert first["path"] == str((root / "dataset").resolve()) and "v2" in (root / "dataset" / "README.md").read_text()


def test_a_recipe_cannot_carry_a_token(monkeypatch):
    for key in ("publish.token", "publish.hf_token", "models.generator.api_key", "models.judge.token"):
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            load_recipe("demo", {key: TOKEN})
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert resolve_token(None) == TOKEN  # the token comes from the environment (else the login)


@pytest.fixture
def labeled_run(tmp_path):
    """A run root holding labeled traces (symbolic labels, no model), as the report needs."""
    root = tmp_path / "run"
    write_synthetic_run(root, 16, per_problem=4)
    cfg = LabelConfig(labelers=["symbolic"], fidelity={"info_gain": False})
    Label(PIPELINE.path("generate", root), PIPELINE.path("label", root), cfg).run()
    return root


def test_a_token_never_reaches_run_files_artifacts_or_logs(labeled_run, prefect_stack, monkeypatch, caplog, capsys):
    """The real flow's writing paths (recipe.json, run.json, report.html, the Prefect artifact and
    logs) with a token in the environment and one pasted into the recipe's free text; the flow
    runs here against the session's Prefect server (its artifacts are read back from there)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import flows.curate as curate_module

    caplog.set_level(logging.INFO)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    stage = {"status": "ran", "rows_in": 16, "rows_out": 16, "rejected_empty_problem": 1, "seconds": 0.1}
    real_task = curate_module.stage_task

    def stand_in(name, pipeline, recipe, root, fingerprint, summary):
        if name == "report":  # the real page, over the labeled traces and the run.json written so far
            return real_task.fn(name, pipeline, recipe, root, fingerprint, summary)
        if name == "publish":  # a token-shaped string in a result: it reaches run.json and the artifact unless scrubbed
            return {"target": "local", "path": str(root / "dataset"), "configs": {"note": TOKEN}}
        return dict(stage)

    monkeypatch.setattr(curate_module, "stage_task", stand_in)
    recipe = load_recipe("demo").model_copy(update={"description": f"pasted by mistake: {TOKEN}"})
    with temporary_settings({PREFECT_API_URL: prefect_stack.env["PREFECT_API_URL"]}):
        summary = curate_module.curate(recipe, str(labeled_run))
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts()
    assert summary["stages"]["label"] == stage  # the stand-ins ran, the flow wrote its files
    written = {p.name: p for p in labeled_run.iterdir() if p.is_file()}
    assert {"recipe.json", "run.json", "report.html"} <= set(written)
    leaks = [p for p in labeled_run.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert "pasted by mistake: hf_***" in json.loads(written["recipe.json"].read_text())["description"]
    assert any("| label | ran | 16 | 16" in str(a.data) for a in artifacts if a.key == "curate-demo")
    assert all(TOKEN not in str(a.data) for a in artifacts)
    captured = capsys.readouterr()
    assert "label: {'status': 'ran'" in caplog.text + captured.out + captured.err  # the flow's logs were seen
    assert TOKEN not in captured.out + captured.err + caplog.text
