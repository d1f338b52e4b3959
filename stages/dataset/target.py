"""Where a dataset goes and how it gets there: built in a folder, swapped in, committed to the Hub.

A dataset (the corpus, or an evaluation's results) is always assembled locally first, atomically
(`hub.publish_local`); the Hub target then commits that folder, so what was uploaded can be
inspected.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, field_validator

from stages.base import StageConfig
from stages.dataset.hub import publish_hub, publish_local
from stages.dataset.shards import MAX_SHARD_BYTES, ROW_GROUP_BYTES
from stages.paths import inside_root, relative_path, replaceable

T = TypeVar("T")


class DatasetTarget(StageConfig):
    """Where a dataset is published: a folder under the run's output root, then a Hub repo for
    target `hub`; and the shards' sizes."""

    target: Literal["local", "hub"] = "local"
    path: str = "dataset"  # local folder, relative to the run's output root (also the staging folder for "hub")
    repo_id: str | None = None
    private: bool = False
    create_pr: bool = False
    revision: str | None = None  # branch to commit to (default main)
    tag: str | None = None  # explicit tag; default: the next v<N>
    default_config: str = "dpo"
    max_shard_bytes: int = Field(MAX_SHARD_BYTES, gt=0)
    row_group_bytes: int = Field(ROW_GROUP_BYTES, gt=0)

    @field_validator("path")
    @classmethod
    def _inside_output_root(cls, value: str) -> str:
        return relative_path(value, "publish.path")


def publish_folder(build_fn: Callable[[Path], T], cfg: DatasetTarget, out_root: Path, owns: set[str]) -> dict:
    """Build a dataset with `build_fn(folder)` and swap it in at `cfg.path` under `out_root` (which
    may hold only the names in `owns`: the swap deletes them), then commit it to the Hub when the
    target says so. Returns where it went and `build_fn`'s result under `built`."""
    if cfg.target == "hub" and not cfg.repo_id:
        raise ValueError("publish target 'hub' needs repo_id")
    dest = inside_root(Path(out_root), cfg.path, "publish.path")
    replaceable(dest, owns, "publish.path", cfg.path)
    result = {"target": cfg.target, "path": str(dest.resolve()), "built": publish_local(build_fn, dest)}
    if cfg.target == "hub":
        hub = publish_hub(
            dest,
            cfg.repo_id,
            private=cfg.private,
            create_pr=cfg.create_pr,
            revision=cfg.revision,
            tag=cfg.tag,
        )
        result |= {"repo_id": cfg.repo_id, "hub": hub}
    return result
