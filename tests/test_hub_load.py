"""Load by name: what the README promises trainers, `load_dataset("org/name", config)`, through the Hub API.

The corpus is published to the fake Hub (tests/fake_hub.py) by the project's publish path, then read back
by repo name with the real `datasets` and `huggingface_hub` clients (nothing local to fall back on: fresh
caches, and the fake Hub must have served every shard), and TRL's DPO trains two steps on it by name.
"""

from __future__ import annotations

import math

import pytest
from datasets import load_dataset
from fake_hub import git_oid
from huggingface_hub import HfApi, HfFileSystem, constants, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError
from test_publish import META, config_tables  # tests/ is on sys.path (pytest rootdir conftest)

from schemas import CONFIGS
from stages.publish.stage import PublishConfig, publish
from stages.train.stage import RECORD, TrainConfig, fingerprint, train

REPO = "org/reasoning"


def served_files(hub) -> set[str]:
    """Repo paths whose bytes the fake Hub sent (GET on `resolve`, whatever the revision in the URL)."""
    prefix = f"/datasets/{REPO}/resolve/"
    gets = [r["path"] for r in hub.requests if r["method"] == "GET" and r["path"].startswith(prefix)]
    return {path.removeprefix(prefix).split("/", 1)[1] for path in gets}


def test_every_config_loads_by_name_and_dpo_trains_on_it(tmp_path, fake_hub, monkeypatch):
    out = tmp_path / "run"
    # Small shards: a config spans several files, as a real corpus does.
    result = publish(
        config_tables(), META, PublishConfig(target="hub", path="ds", repo_id=REPO, max_shard_bytes=300), out
    )
    repo = fake_hub.repos[REPO]
    head = repo["branches"]["main"]
    assert result["hub"]["commit"] == head and result["hub"]["tag"] == "v1"
    shards = {p for p in repo["commits"][head] if p.startswith("data/")}
    assert len(shards) > len(CONFIGS)

    folder = out / "ds"
    for name in CONFIGS:
        local = load_dataset(str(folder), name, split="train", cache_dir=str(tmp_path / "local-cache"))
        hub = load_dataset(REPO, name, split="train", cache_dir=str(tmp_path / "hub-cache"))
        assert hub.num_rows == local.num_rows == result["configs"][name]["rows"] > 0
        assert hub.features == local.features == CONFIGS[name]
        assert hub.to_list() == local.to_list()
        assert all(f["filename"].startswith(str(tmp_path / "hub-cache")) for f in hub.cache_files)
    assert served_files(fake_hub) >= shards | {"README.md"}
    ids = load_dataset(REPO, "traces", split="train", cache_dir=str(tmp_path / "hub-cache"))["trace_id"]
    assert sorted(ids) == [f"t{i:03d}" for i in range(6)]
    assert fake_hub.unknown == []

    # The trainer loads by name too: a fresh Hub cache, so its rows must come from the fake Hub again.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub-cache-train"))
    fake_hub.requests.clear()
    cfg = TrainConfig(method="dpo", model="tiny:student", dataset=REPO, max_steps=2, batch_size=2)
    trained = train(cfg, tmp_path / "dpo")
    assert {p for p in shards if p.startswith("data/dpo/")} <= served_files(fake_hub)
    local_dpo = load_dataset(str(folder), "dpo", split="train", cache_dir=str(tmp_path / "local-cache"))
    assert trained["rows"] == local_dpo.num_rows
    assert trained["data_fingerprint"] == fingerprint(local_dpo.select_columns(["prompt", "chosen", "rejected"]))
    assert trained["steps"] == 2 and math.isfinite(trained["training_loss"])
    assert (tmp_path / "dpo" / "model.safetensors").is_file() and (tmp_path / "dpo" / RECORD).is_file()
    assert fake_hub.unknown == []


def test_hub_api_reads_and_streaming_match_the_commit(tmp_path, fake_hub):
    """The other read routes clients use: repo info, paths-info, 404s they map to errors, ranged reads."""
    result = publish(config_tables(), META, PublishConfig(target="hub", path="ds", repo_id=REPO), tmp_path)
    files = fake_hub.repos[REPO]["commits"][result["hub"]["commit"]]
    api = HfApi()
    info = api.dataset_info(REPO)
    assert info.sha == result["hub"]["commit"] and {s.rfilename for s in info.siblings} == set(files)
    assert api.dataset_info(REPO, revision="v1").sha == info.sha
    entries = api.get_paths_info(REPO, ["README.md", "data/sft", "nope"], repo_type="dataset")
    assert {e.path: getattr(e, "blob_id", "dir") for e in entries} == {
        "README.md": git_oid(files["README.md"]),
        "data/sft": "dir",
    }
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.json", repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("org/absent")
    shard = "data/sft/train-00000-of-00001.parquet"
    with HfFileSystem(endpoint=fake_hub.endpoint).open(f"datasets/{REPO}/{shard}", "rb", block_size=64) as f:
        f.seek(100)
        assert f.read(50) == files[shard][100:150]
    assert any(r["range"] and r["path"].endswith(shard) for r in fake_hub.requests)
    streamed = list(load_dataset(REPO, "sft", split="train", streaming=True))
    local = load_dataset(str(tmp_path / "ds"), "sft", split="train", cache_dir=str(tmp_path / "local-cache"))
    assert streamed == local.to_list()
    assert any(r["method"] == "POST" and "/paths-info/" in r["path"] for r in fake_hub.requests)
    assert fake_hub.unknown == []
