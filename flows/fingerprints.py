"""Stage fingerprints: what a stage's outputs were made from, so a re-run knows whether to reuse them.

A stage's fingerprint hashes its recipe section, the engine configs of the model roles it uses,
the fingerprints of the stages it reads from, and its code: the syntax trees of its own modules
and of every project module they import, transitively. Changed stage code thus recomputes the
stage and everything downstream, while a comment or formatting change does not (comments and
layout are not in the tree). A role whose model is a local checkpoint folder adds the size and
modification time of its weight files, so a checkpoint retrained at the same path (the `improve`
loop's) recomputes what it made. Library versions (vLLM, torch) are not hashed.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import shutil
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from stages.engine import resolve_model

PACKAGES = ("flows", "stages", "schemas", "infra")  # the project's own top-level packages


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def weights_stamp(model: str) -> str | None:
    """(name, size, mtime) of a local checkpoint folder's weight files, hashed; None for a model
    named by Hub id. Content hashes would read every byte of a 7B checkpoint on every run."""
    folder = Path(resolve_model(model))
    if not folder.is_dir():
        return None
    files = sorted(f for f in folder.iterdir() if f.suffix in (".safetensors", ".bin", ".pt"))
    return digest([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files])


def _source(module: str) -> Path | None:
    """The source file of `module` (a package's `__init__.py`), else None (a namespace, a built-in)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec else None
    return Path(origin) if origin and origin.endswith(".py") else None


@cache
def _module(module: str, packages: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(hash of `module`'s syntax tree, the modules of `packages` it imports, parents included)."""
    path = _source(module)
    if path is None:
        return "", ()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # submodules imported by name
    imported = set()
    for name in names:
        parts = name.split(".")
        if parts[0] in packages:
            imported |= {".".join(parts[: i + 1]) for i in range(len(parts))}  # parents run on import too
    found = tuple(sorted(m for m in imported if _source(m) is not None))
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest(), found


def code_hash(modules: Iterable[str]) -> str:
    """Hash of `modules` and every module they import, transitively, from the project's packages
    or their own (a stage defined outside the project is hashed with its package); a package's
    parents are included, since importing `a.b.c` runs `a` and `a.b` too."""
    modules = list(modules)
    packages = tuple(sorted(set(PACKAGES) | {m.split(".")[0] for m in modules}))
    seen: dict[str, str] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name], imports = _module(name, packages)
        todo += [m for m in imports if m not in seen]
    return digest(sorted(seen.items()))


def claim_outputs(root: Path, name: str, folder: str, fingerprint: str) -> str | None:
    """Record that `folder` holds `name`'s outputs for `fingerprint`. Outputs of another
    fingerprint are moved to `stale/` (never deleted); returns where they went, if anywhere."""
    path = root / "fingerprints.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    moved = None
    if known.get(name, fingerprint) != fingerprint:
        stale = root / "stale" / f"{name}-{known[name]}"
        for part in (folder, f"{folder}_rejects", f"logs/{name}"):
            if (root / part).exists():
                (stale / part).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(root / part, stale / part)
        moved = str(stale)
    known[name] = fingerprint
    path.write_text(json.dumps(known, indent=2))
    return moved
