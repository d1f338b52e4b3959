"""Publishing: a local folder `load_dataset` reads back exactly, atomic replacement, Hub commits, no token leaks.

The Hub tests run the real `huggingface_hub.HfApi` client against the fake Hub of tests/fake_hub.py
(served by `http.server` on 127.0.0.1, endpoint patched, offline mode lifted for the test only).
"""

from __future__ import annotations

import logging
import random
import re
import traceback
from pathlib import Path

import datasets
import huggingface_hub
import pyarrow as pa
import pytest
from fake_hub import FakeHub  # tests/ is on sys.path (pytest rootdir conftest)
from huggingface_hub import DatasetCard

from schemas import CONFIGS
from stages.dataset.hub import PublishError
from stages.publish.figures import write_figures
from stages.publish.stage import PublishConfig, publish
from stages.shards import write_table

META = {
    "pretty_name": "Thoughtmill test corpus",
    "code_version": "test",
    "recipe": {"name": "demo", "seed": 0, "generate": {"engine": {"model": "tiny:teacher"}, "sampling": {"n": 4}}},
    "counts": {"problems": 3, "traces": 6},
    "drops": {"pass_rate_too_high": 2, "finish_length": 1},
}
PNG = b"\x89PNG\r\n\x1a\n"


def _msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def config_tables(n: int = 6) -> dict[str, pa.Table]:
    """Small valid tables for every config (unlisted fields are null), rows in shuffled order."""
    rows: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    for i in range(n):
        tid, pid = f"t{i:03d}", f"p{i // 2}"
        steps = [
            {"index": j, "text": f"step {j} of {i}", "mean_logprob": -0.15 * (j + i % 3), "label": j < i % 4}
            for j in range(4)
        ]
        rows["traces"].append(
            {"trace_id": tid, "problem_id": pid, "model": "tiny:teacher", "steps": steps, "first_error": i % 4 - 1}
            | {"final_correct": i % 2 == 0, "thinking_tokens": 40 + 15 * i, "consensus": ["agree", "disagree"][i % 2]}
            | {"thinking_answer_agrees": [True, False, None][i % 3], "token_logprobs": [], "token_offsets": []}
        )
        rows["sft"].append({"messages": [_msg("user", f"q{i}"), _msg("assistant", f"a{i}")], "trace_id": tid})
        rows["prm"].append({"prompt": f"q{i}", "completions": ["s1", "s2"], "labels": [True, i % 2 == 0]})
        rows["prm"][-1] |= {"trace_id": tid, "problem_id": pid}
        rows["dpo"].append(
            {"prompt": [_msg("user", f"q{i}")], "chosen": [_msg("assistant", "good")], "margin": 0.5 + i}
            | {"rejected": [_msg("assistant", "bad")], "kind": "trace", "pair_id": f"pair{i:03d}", "problem_id": pid}
        )
    rng = random.Random(0)
    for r in rows.values():
        rng.shuffle(r)
    return {name: pa.Table.from_pylist(r, schema=CONFIGS[name].arrow_schema) for name, r in rows.items()}


def make_inputs(root: Path, reverse: bool = False) -> dict[str, Path]:
    """Each config as a shard folder (two shards, as upstream stages write them); `reverse` reverses the
    rows inside each shard (the same rows per shard, in another order)."""
    inputs = {}
    for name, halves in shard_tables().items():
        folder = root / f"in-{name}-{int(reverse)}"
        for i, half in enumerate(halves):
            half = half.take(list(range(half.num_rows))[::-1]) if reverse else half
            write_table(half, folder / f"{i:05d}.parquet", CONFIGS[name])
        inputs[name] = folder
    return inputs


def shard_tables() -> dict[str, list[pa.Table]]:
    """Each config's rows split in two input shards."""
    tables = config_tables()
    return {name: [t.slice(0, t.num_rows // 2), t.slice(t.num_rows // 2)] for name, t in tables.items()}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_publish_local_loads_back_and_is_deterministic(tmp_path):
    out = tmp_path / "run"
    result = publish(make_inputs(tmp_path), META, PublishConfig(path="ds"), out)
    folder = out / "ds"
    assert result["path"] == str(folder.resolve())
    for name, features in CONFIGS.items():
        ds = datasets.load_dataset(str(folder), name, split="train", cache_dir=str(tmp_path / "cache"))
        assert ds.features == features
        assert ds.num_rows == result["configs"][name]["rows"] == 6
    # Published order: input shard by input shard (path order), by id within each.
    first, second = (sorted(t.column("trace_id").to_pylist()) for t in shard_tables()["traces"])
    assert [
        r["trace_id"] for r in datasets.load_dataset(str(folder), "traces", cache_dir=str(tmp_path / "c2"))["train"]
    ] == first + second

    text = (folder / "README.md").read_text()
    data = DatasetCard(text).data.to_dict()
    configs = {c["config_name"]: c for c in data["configs"]}
    assert set(configs) == set(CONFIGS) and configs["dpo"].get("default") is True
    assert configs["prm"]["data_files"] == [{"split": "train", "path": "data/prm/*.parquet"}]
    infos = {i["config_name"]: i for i in data["dataset_info"]}
    assert infos["dpo"]["splits"][0]["num_examples"] == 6 and infos["dpo"]["download_size"] > 0
    assert "pass_rate_too_high" in text and "PRMTrainer" in text and "tiny:teacher" in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) == 4
    for image in images:
        blob = (folder / image).read_bytes()
        assert blob.startswith(PNG) and len(blob) > 1024

    before = snapshot(folder)
    publish(make_inputs(tmp_path, reverse=True), META, PublishConfig(path="ds"), out)
    assert snapshot(folder) == before
    publish(shard_tables(), META, PublishConfig(path="ds"), out)  # the same shards as in-memory tables: same bytes
    assert snapshot(folder) == before


def test_empty_config_is_left_out(tmp_path):
    inputs = {"sft": config_tables()["sft"], "dpo": CONFIGS["dpo"].arrow_schema.empty_table()}
    result = publish(inputs, {}, PublishConfig(path="ds"), tmp_path)
    assert result["configs"]["dpo"] == {"skipped": "no rows"} and not (tmp_path / "ds" / "data" / "dpo").exists()
    configs = DatasetCard((tmp_path / "ds" / "README.md").read_text()).data.to_dict()["configs"]
    assert configs == [
        {"config_name": "sft", "data_files": [{"split": "train", "path": "data/sft/*.parquet"}], "default": True}
    ]


def test_figures_handle_empty_and_null_data(tmp_path):
    nulls = pa.Table.from_pylist([{"trace_id": "a"}], schema=CONFIGS["traces"].arrow_schema)
    for i, table in enumerate([pa.table({}), nulls, CONFIGS["traces"].arrow_schema.empty_table()]):
        for path in write_figures(table, tmp_path / str(i)).values():
            assert path.read_bytes().startswith(PNG) and path.stat().st_size > 1024


def test_crash_keeps_previous_publish(tmp_path, monkeypatch):
    out, inputs = tmp_path / "run", make_inputs(tmp_path)
    publish(inputs, META, PublishConfig(path="ds"), out)
    before = snapshot(out / "ds")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("stages.publish.stage.write_figures", boom)  # after every shard is written
    with pytest.raises(RuntimeError, match="disk full"):
        publish(inputs, {**META, "pretty_name": "changed"}, PublishConfig(path="ds"), out)
    assert snapshot(out / "ds") == before
    assert sorted(p.name for p in out.iterdir()) == ["ds"]


# --- Hub (the `fake_hub` fixture: tests/fake_hub.py, registered in conftest.py) ---------------


def hub_cfg(**kw) -> PublishConfig:
    return PublishConfig(target="hub", path="ds", repo_id="org/reasoning", **kw)


def commits(hub: FakeHub) -> list[dict]:
    return [r for r in hub.requests if r["method"] == "POST" and r["path"].endswith("/commit/main")]


def test_hub_publish_commits_deletes_stale_shards_and_skips_unchanged(tmp_path, fake_hub):
    out, inputs = tmp_path / "run", make_inputs(tmp_path)
    first = publish(inputs, META, hub_cfg(max_shard_bytes=300), out)
    assert first["configs"]["traces"]["shards"] == 6 and first["hub"]["committed"] and first["hub"]["tag"] == "v1"
    repo = fake_hub.repos["org/reasoning"]
    assert repo["commits"][repo["branches"]["main"]] == {".gitattributes": b"*.parquet filter=lfs\n"} | snapshot(
        out / "ds"
    )
    assert "data/traces/train-00005-of-00006.parquet" in first["hub"]["added"]
    assert repo["tags"] == {"v1": repo["branches"]["main"]}

    again = publish(inputs, META, hub_cfg(max_shard_bytes=300), out)
    assert not again["hub"]["committed"] and again["hub"]["commit"] == first["hub"]["commit"]
    assert len(commits(fake_hub)) == 1 and again["hub"]["tag"] == "v1" and len(repo["log"]) == 2

    shrunk = publish(inputs, META, hub_cfg(), out)  # one shard per config now
    hub = shrunk["hub"]
    assert hub["committed"] and hub["tag"] == "v2" and len(commits(fake_hub)) == 2
    assert "data/traces/train-00000-of-00006.parquet" in hub["deleted"] and len(hub["deleted"]) > 6
    assert "data/traces/train-00000-of-00001.parquet" in hub["added"] and "figures/calibration.png" not in hub["added"]
    head = repo["commits"][repo["branches"]["main"]]
    assert head == {".gitattributes": b"*.parquet filter=lfs\n"} | snapshot(out / "ds")
    assert all(r["auth"] == f"Bearer {huggingface_hub.get_token()}" for r in commits(fake_hub))


def test_token_never_leaks(tmp_path, fake_hub, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")
    token = huggingface_hub.get_token()
    assert token and token.startswith("hf_")
    out = tmp_path / "run"
    publish(make_inputs(tmp_path), {**META, "description": f"must be scrubbed: {token}"}, hub_cfg(), out)
    assert "must be scrubbed: hf_***" in (out / "ds" / "README.md").read_text()
    assert any(r["auth"] == f"Bearer {token}" for r in fake_hub.requests)  # the token was really used
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or token.encode() not in path.read_bytes(), path
    for status in (401, 500):
        fake_hub.fail = status
        with pytest.raises(PublishError) as info:
            publish(make_inputs(tmp_path), META, hub_cfg(), out)
        exc = info.value
        assert f"HTTP {status}" in str(exc) and "rejected credentials: Bearer ***" in str(exc)  # echo redacted
        assert exc.__cause__ is None and exc.__context__ is None
        assert token not in "".join(traceback.format_exception(exc)) and token not in repr(exc)
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err
    assert any(r.name.startswith("huggingface_hub") for r in caplog.records)  # the client's debug logs were seen
    assert token not in caplog.text and all(token not in str(r.args) for r in caplog.records)
