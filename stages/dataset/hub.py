"""Publish targets: an atomic local folder, or an idempotent commit to a Hub dataset repo.

Local: everything is built in a hidden temp folder next to the destination and renamed into
place, so a crash never leaves a half-written dataset where readers look.

Hub: the local folder is diffed against the remote tree (git blob sha1 for regular files, sha256
for LFS/Xet files) and committed with explicit add and delete operations, so stale shards vanish
when the shard count changes and re-publishing unchanged data creates no commit. Each published
commit gets a `v<N>` tag (skipped when the commit is already tagged). The token is resolved once
and never logged, written or put in an error message: Hub errors are re-raised as `PublishError`
with a scrubbed message and no chained exception (whose request would carry the header).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import TypeVar

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token

from stages.secrets import scrub

log = logging.getLogger(__name__)
T = TypeVar("T")

MANAGED = ("data/*/*.parquet", "figures/*.png", "README.md")
TAG_RE = re.compile(r"v(\d+)")


class PublishError(RuntimeError):
    """Publishing failed; the message is safe to log (no token, no headers)."""


# --- local ---------------------------------------------------------------------------------


def _recover(dest: Path) -> None:
    """A crash between the two renames leaves only the aside copy: put it back. Then remove what
    killed publishes of `dest` left beside it (build folders, aside copies): a run root has one
    publish at a time, so none of them belongs to a live writer."""
    aside = sorted(dest.parent.glob(f".{glob.escape(dest.name)}.old-*"), key=lambda p: p.stat().st_mtime)
    if aside and not dest.exists():
        os.rename(aside.pop(), dest)
    for left in aside + list(dest.parent.glob(f".{glob.escape(dest.name)}.tmp-*")):
        if left.is_dir() and not left.is_symlink():
            shutil.rmtree(left, ignore_errors=True)
        else:
            left.unlink()


def publish_local(build_fn: Callable[[Path], T], dest: Path) -> T:
    """Run `build_fn(folder)` in a temp folder beside `dest`, then swap it in; returns build_fn's result."""
    dest = Path(dest).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    _recover(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
    try:
        result = build_fn(tmp)
        os.chmod(tmp, 0o755)
        aside = dest.with_name(f".{dest.name}.old-{os.getpid()}-{uuid.uuid4().hex}") if dest.exists() else None
        if aside is not None:
            os.rename(dest, aside)
        try:
            os.rename(tmp, dest)
        except BaseException:
            if aside is not None:
                os.rename(aside, dest)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return result


# --- hub -----------------------------------------------------------------------------------


def file_ids(path: Path, chunk: int = 1 << 20) -> tuple[str, str]:
    """(git blob sha1, sha256), streamed: the Hub lists regular files by the first, LFS/Xet files by the second."""
    sha1 = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    sha256 = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            sha1.update(block)
            sha256.update(block)
    return sha1.hexdigest(), sha256.hexdigest()


def local_files(folder: Path) -> dict[str, tuple[str, str]]:
    """Relative posix path -> (git blob sha1, sha256) for every file in `folder`."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    return {path.relative_to(folder).as_posix(): file_ids(path) for path in files}


def remote_files(entries) -> dict[str, set[str]]:
    """Remote path -> the ids it can match (git blob id, and the LFS sha256 when it has one)."""
    out = {}
    for e in entries:
        if getattr(e, "blob_id", None) is None:
            continue  # folder
        ids = {e.blob_id}
        if e.lfs is not None:
            ids.add(e.lfs.sha256)
        out[e.path] = ids
    return out


def plan_commit(local: dict[str, tuple[str, str]], remote: dict[str, set[str]]) -> tuple[list[str], list[str]]:
    """(paths to upload, remote paths to delete): changed or new local files; managed remote files gone locally."""
    adds = [p for p, ids in local.items() if not remote.get(p, set()) & set(ids)]
    deletes = sorted(p for p in remote if p not in local and any(fnmatch(p, pat) for pat in MANAGED))
    return adds, deletes


def next_tag(tags: list[str]) -> str:
    numbers = [int(m.group(1)) for t in tags if (m := TAG_RE.fullmatch(t))]
    return f"v{max(numbers, default=0) + 1}"


def resolve_token(token: str | None) -> str | None:
    return token or os.environ.get("HF_TOKEN") or get_token()


def _redact(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
    return scrub(text)


def _hub_call(what: str, token: str | None, fn: Callable[..., T], *args, **kwargs) -> T:
    """`fn(*args, **kwargs)`; any failure becomes a PublishError with a redacted message and no chained exception."""
    message = None
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # every client error must be redacted, whatever its type
        status = getattr(getattr(exc, "response", None), "status_code", None)
        detail = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        message = f"{what} failed" + (f" (HTTP {status})" if status else "") + f": {_redact(detail, token)}"
    raise PublishError(message)  # outside the handler: no __context__ carrying the request


def _branch_head(api: HfApi, repo_id: str, branch: str) -> str | None:
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    return next((b.target_commit for b in refs.branches if b.name == branch), None)


def publish_hub(
    folder: Path,
    repo_id: str,
    token: str | None = None,
    *,
    private: bool = False,
    create_pr: bool = False,
    revision: str | None = None,
    tag: str | None = None,
    commit_message: str = "Publish dataset with Thoughtmill",
    endpoint: str | None = None,
) -> dict:
    """Commit `folder` to dataset `repo_id` on branch `revision` (default main) unless nothing changed, then tag.

    `tag`: explicit tag name, else the next `v<N>`; no tag when `create_pr` (the commit is not on a branch).
    Returns repo_id, commit, committed (bool), added, deleted, tag and pr_url.
    """
    token = resolve_token(token)
    branch = revision or "main"
    api = HfApi(endpoint=endpoint, token=token)
    local = local_files(folder)
    _hub_call(
        f"create repo {repo_id}", token, api.create_repo, repo_id, repo_type="dataset", exist_ok=True, private=private
    )
    head = _hub_call(f"read refs of {repo_id}", token, _branch_head, api, repo_id, branch)
    if head is None and revision is not None:  # a new branch, from main
        _hub_call(f"create branch {branch}", token, api.create_branch, repo_id, branch=branch, repo_type="dataset")
        head = _hub_call(f"read refs of {repo_id}", token, _branch_head, api, repo_id, branch)
    remote: dict[str, set[str]] = {}
    if head is not None:
        tree = lambda: list(api.list_repo_tree(repo_id, recursive=True, revision=head, repo_type="dataset"))
        remote = remote_files(_hub_call(f"list files of {repo_id}", token, tree))
    adds, deletes = plan_commit(local, remote)
    result = {"repo_id": repo_id, "commit": head, "committed": False, "added": adds, "deleted": deletes}
    result |= {"tag": None, "pr_url": None}
    if adds or deletes:
        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(Path(folder) / p)) for p in adds]
        ops += [CommitOperationDelete(path_in_repo=p) for p in deletes]
        log.info("committing to %s: %d added, %d deleted", repo_id, len(adds), len(deletes))
        info = _hub_call(
            f"commit to {repo_id}",
            token,
            api.create_commit,
            repo_id,
            ops,
            commit_message=commit_message,
            repo_type="dataset",
            revision=branch,
            create_pr=create_pr,
            parent_commit=None if create_pr else head,
        )
        result |= {"commit": info.oid, "committed": True, "pr_url": info.pr_url}
    else:
        log.info("no changes for %s: no commit", repo_id)
    if not create_pr and result["commit"] is not None:
        result["tag"] = _ensure_tag(api, repo_id, result["commit"], tag, token)
    return result


def _ensure_tag(api: HfApi, repo_id: str, commit: str, tag: str | None, token: str | None) -> str:
    tags = _hub_call(f"read tags of {repo_id}", token, api.list_repo_refs, repo_id, repo_type="dataset").tags
    on_commit = [t.name for t in tags if t.target_commit == commit and (tag is None or t.name == tag)]
    if on_commit:
        return sorted(on_commit)[-1]
    name = tag or next_tag([t.name for t in tags])
    _hub_call(f"tag {repo_id}", token, api.create_tag, repo_id, tag=name, revision=commit, repo_type="dataset")
    log.info("tagged %s at %s as %s", repo_id, commit, name)
    return name
