"""The flow's bookkeeping without engines: stage fingerprints, stale outputs, the run summary."""

from __future__ import annotations

import json

from flows.curate import summary_markdown
from flows.fingerprints import claim_outputs
from flows.pipeline import PIPELINE, load_recipe
from stages.engine.types import offsets_from_pieces


def fingerprints(overrides: dict | None = None) -> dict[str, str]:
    return PIPELINE.fingerprints(load_recipe("demo", overrides))


def test_a_changed_section_changes_its_stage_and_everything_downstream_only():
    base = fingerprints()
    label = fingerprints({"label.rollouts.k": 8})
    assert label["problems"] == base["problems"] and label["generate"] == base["generate"]
    assert label["label"] != base["label"]
    assert label["pairs"] != base["pairs"] and label["frontier"] != base["frontier"]
    assert label["export"] != base["export"] and label["report"] != base["report"]
    executor = fingerprints({"executor.workers": 1, "executor.tasks": 1})
    assert executor == base  # how a stage is run does not change what it produces


def test_a_changed_model_role_changes_the_stages_that_use_it_only():
    base = fingerprints()
    student = fingerprints({"models.student.max_num_seqs": 64})
    assert {n for n in base if student[n] != base[n]} == {"frontier", "export", "publish", "report"}
    judge = fingerprints({"models.judge.max_num_seqs": 64})  # an engine of its own now: label and downstream
    assert {n for n in base if judge[n] != base[n]} == {"label", "pairs", "frontier", "export", "publish", "report"}


def test_outputs_of_another_fingerprint_move_to_stale_and_are_not_lost(tmp_path):
    assert claim_outputs(tmp_path, "label", "labeled", "aaaa") is None
    (tmp_path / "labeled").mkdir()
    (tmp_path / "labeled" / "x.parquet").write_bytes(b"old")
    (tmp_path / "logs" / "label").mkdir(parents=True)
    assert claim_outputs(tmp_path, "label", "labeled", "aaaa") is None  # same recipe: kept in place
    assert (tmp_path / "labeled" / "x.parquet").exists()
    moved = claim_outputs(tmp_path, "label", "labeled", "bbbb")
    assert moved and (tmp_path / "stale" / "label-aaaa" / "labeled" / "x.parquet").read_bytes() == b"old"
    assert not (tmp_path / "labeled").exists() and not (tmp_path / "logs" / "label").exists()
    assert json.loads((tmp_path / "fingerprints.json").read_text()) == {"label": "bbbb"}


def test_summary_lists_status_drops_and_where_the_dataset_is():
    summary = {
        "recipe": "demo",
        "stages": {
            "generate": {"status": "complete, skipped", "seconds": 0.0},
            "label": {"status": "ran", "rows_in": 10, "rows_out": 9, "rejected_no_steps": 1, "seconds": 2.0},
            "publish": {"status": "ran", "path": "/x/dataset", "configs": ["sft"]},
        },
    }
    text = summary_markdown(summary)
    assert "| generate | complete, skipped |" in text and "no_steps: 1" in text and "/x/dataset/README.md" in text


def test_token_offsets_accept_a_trailing_eos_piece_but_not_a_straddling_one():
    assert offsets_from_pieces(["1", "+", "<|eos|>"], "1+") == [0, 1, 2]
    assert offsets_from_pieces(["1", "+2"], "1+") is None
    assert offsets_from_pieces(["a", "b"], "ab") == [0, 1]
