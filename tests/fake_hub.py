"""A fake Hugging Face Hub for tests: the real `huggingface_hub` and `datasets` clients talk to it over HTTP.

`http.server` on 127.0.0.1; the `fake_hub` fixture points both clients at it (`HF_ENDPOINT` and the module
constants they read at import time), lifts offline mode and gives them empty caches under the test's tmp
folder, so nothing is read from a real cache. Write side (what the publish path calls): repo creation, refs,
recursive tree listing, README YAML validation, preupload (every file answered as a regular git blob, so no
LFS or Xet transfer is needed), NDJSON commits (regular files and deletions) and tags. Read side (what
`datasets.load_dataset("org/name", config)` calls): repo info, tree listing under a path, paths-info, and
`resolve` file downloads (GET and HEAD, with Range) serving the committed bytes. Any other route answers 404
and is recorded in `unknown`, so a test sees what a client needed that is not served.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import string
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import pytest

REPO_API = re.compile(
    r"/api/datasets/([^/]+/[^/]+)(?:/(refs|tree|preupload|commit|tag|revision|paths-info)(?:/(.*))?)?"
)
RESOLVE = re.compile(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)")
DATE = "2024-01-01T00:00:00.000Z"


@dataclass
class Reply:
    status: int
    body: object  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)


def not_found(code: str, message: str) -> Reply:
    """A 404 as the Hub sends it: the client maps `X-Error-Code` to RepositoryNotFound, EntryNotFound..."""
    return Reply(404, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """In-memory dataset repos: commits (path -> bytes), branches and tags; records every request."""

    def __init__(self, endpoint: str = "") -> None:
        self.endpoint = endpoint
        self.requests: list[dict] = []
        self.unknown: list[str] = []  # "METHOD path" of routes this fake does not serve
        self.repos: dict[str, dict] = {}
        self.fail: int | None = None  # answer every request with this status, echoing the auth header

    def commit(self, repo: dict, files: dict[str, bytes], message: str) -> str:
        sha = hashlib.sha1(f"{len(repo['commits'])}:{message}".encode()).hexdigest()
        repo["commits"][sha] = files
        repo["log"].append(sha)
        repo["branches"]["main"] = sha
        return sha

    def handle(self, method: str, url: str, headers, body: bytes) -> Reply:
        path, query = urlparse(url).path, urlparse(url).query
        auth, ranged = headers.get("authorization"), headers.get("range")
        self.requests.append({"method": method, "path": path, "query": query, "auth": auth, "range": ranged})
        if self.fail:
            return Reply(self.fail, {"error": f"rejected credentials: {headers.get('authorization')}"})
        if path == "/api/repos/create":
            req = json.loads(body)
            repo_id = f"{req['organization']}/{req['name']}"
            if repo_id in self.repos:
                return Reply(409, {"error": "You already created this dataset repo", "url": f"/datasets/{repo_id}"})
            repo = self.repos[repo_id] = {"commits": {}, "log": [], "branches": {}, "tags": {}}
            self.commit(repo, {".gitattributes": b"*.parquet filter=lfs\n"}, "initial commit")
            return Reply(200, {"url": f"{self.endpoint}/datasets/{repo_id}"})
        if path == "/api/validate-yaml":
            return Reply(200, {"errors": [], "warnings": []})
        if m := RESOLVE.fullmatch(path):
            return self.resolve(method, m.group(1), unquote(m.group(2)), unquote(m.group(3)), headers)
        m = REPO_API.fullmatch(path)
        if not m:
            self.unknown.append(f"{method} {path}")
            return Reply(404, {"error": f"not served by the fake Hub: {method} {path}"})
        if m.group(1) not in self.repos:
            return not_found("RepoNotFound", f"repository {m.group(1)} not found")
        repo_id, action, rest = m.group(1), m.group(2) or "revision", m.group(3) or ""
        repo = self.repos[repo_id]
        if action == "refs":
            ref = lambda kind, name, sha: {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}
            return Reply(
                200,
                {
                    "branches": [ref("heads", b, s) for b, s in repo["branches"].items()],
                    "tags": [ref("tags", t, s) for t, s in repo["tags"].items()],
                    "converts": [],
                },
            )
        rev, _, sub = rest.partition("/")  # the revision is quoted whole (a "/" in it arrives as %2F)
        head = self.head(repo, unquote(rev) or "main")
        if head is None:
            return not_found("RevisionNotFound", f"revision {unquote(rev)} not found")
        files = repo["commits"][head]
        if action == "revision":  # repo info: GET /api/datasets/{repo}[/revision/{rev}]
            siblings = [{"rfilename": p} for p in sorted(files)]
            info = {"id": repo_id, "sha": head, "private": False, "siblings": siblings, "lastModified": DATE}
            return Reply(200, info | {"tags": [], "downloads": 0, "likes": 0})
        if action == "tree":
            under = unquote(sub)
            if under and not any(p.startswith(under + "/") for p in files):
                return not_found("EntryNotFound", f"{under} does not exist at {head}")
            return Reply(200, self.tree(files, under, parse_qs(query).get("recursive", [""])[0].lower() == "true"))
        if action == "paths-info":
            wanted = parse_qs(body.decode()).get("paths", [])
            return Reply(200, [e for e in self.tree(files, "", True) if e["path"] in wanted])
        return self.write(repo_id, repo, action, head, files, body)

    @staticmethod
    def head(repo: dict, rev: str) -> str | None:
        """The commit a branch, tag or commit sha names."""
        return repo["branches"].get(rev) or repo["tags"].get(rev) or (rev if rev in repo["commits"] else None)

    def write(self, repo_id: str, repo: dict, action: str, head: str, files: dict[str, bytes], body: bytes) -> Reply:
        if action == "preupload":
            wanted = json.loads(body)["files"]
            oid = lambda p: git_oid(files[p]) if p in files else None
            return Reply(
                200,
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid(f["path"])}
                        for f in wanted
                    ]
                },
            )
        if action == "tag":
            tag = json.loads(body)["tag"]
            if tag in repo["tags"]:
                return Reply(409, {"error": "tag exists"})
            repo["tags"][tag] = head
            return Reply(200, {})
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, head):
            return Reply(412, {"error": "parent commit is not the head"})
        new = dict(files)
        for op in lines[1:]:
            if op["key"] == "file":
                new[op["value"]["path"]] = base64.b64decode(op["value"]["content"])
            elif op["key"] == "deletedFile":
                del new[op["value"]["path"]]
            else:
                return Reply(400, {"error": f"unsupported operation {op['key']}"})
        sha = self.commit(repo, new, header["summary"])
        return Reply(200, {"commitUrl": f"{self.endpoint}/datasets/{repo_id}/commit/{sha}", "commitOid": sha})

    def resolve(self, method: str, repo_id: str, rev: str, path: str, headers) -> Reply:
        """A file's committed bytes, with the headers `hf_hub_download` reads (ETag, X-Repo-Commit, size)."""
        if repo_id not in self.repos:
            return not_found("RepoNotFound", f"repository {repo_id} not found")
        repo = self.repos[repo_id]
        head = self.head(repo, rev)
        if head is None:
            return not_found("RevisionNotFound", f"revision {rev} not found")
        commit = {"X-Repo-Commit": head}
        if path not in repo["commits"][head]:
            return Reply(404, {"error": "entry not found"}, commit | {"X-Error-Code": "EntryNotFound"})
        data = repo["commits"][head][path]
        commit |= {"ETag": f'"{git_oid(data)}"', "Accept-Ranges": "bytes", "content-type": "application/octet-stream"}
        if m := re.fullmatch(r"bytes=(\d+)-(\d*)", headers.get("range") or ""):  # HfFileSystem reads blocks
            start, end = int(m.group(1)), min(int(m.group(2) or len(data) - 1), len(data) - 1)
            return Reply(206, data[start : end + 1], commit | {"Content-Range": f"bytes {start}-{end}/{len(data)}"})
        return Reply(200, data, commit)

    @staticmethod
    def tree(files: dict[str, bytes], under: str = "", recursive: bool = True) -> list[dict]:
        """Tree entries below folder `under` ("" for the root): all of them, or its direct children only."""
        folders = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        prefix = under + "/" if under else ""
        below = lambda p: p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])
        out = [{"type": "directory", "path": f, "oid": "0" * 40, "size": 0} for f in sorted(folders) if below(f)]
        return out + [
            {"type": "file", "path": p, "oid": git_oid(b), "size": len(b)} for p, b in sorted(files.items()) if below(p)
        ]


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """A running FakeHub that `huggingface_hub` and `datasets` reach (online, empty caches, a fake token)."""
    import datasets
    from huggingface_hub import constants

    hub = FakeHub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            reply = hub.handle(self.command, self.path, self.headers, body)
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            headers = {"content-type": "application/json"} | reply.headers | {"content-length": str(len(data))}
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    # Both libraries copy the environment into module constants at import time: patch those too.
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub-cache"))
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", url)
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)  # a HEAD to S3 otherwise
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")
    monkeypatch.setenv("HF_TOKEN", "hf_" + "".join(random.Random(7).choices(string.ascii_letters, k=34)))
    yield hub
    server.shutdown()
    server.server_close()
