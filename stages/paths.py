"""Output paths named in recipes stay inside the run's output root.

A recipe is configuration that travels (deployment parameters, `--set` overrides, shared YAML),
so a path in it must not be able to write elsewhere: absolute paths and `..` are refused when
the recipe is validated, and a symlink that leads outside the root is refused when the path is
used.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath


def relative_path(value: str, key: str) -> str:
    """`value` if it is a non-empty relative path without `..`; else a ValueError naming `key`."""
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if not value.strip() or PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute():
        raise ValueError(f"{key}={value!r}: must be a relative path inside the output root")
    if ".." in parts:
        raise ValueError(f"{key}={value!r}: '..' would leave the output root")
    return value


def inside_root(root: Path, value: str, key: str) -> Path:
    """`root / value`, after checking that it resolves (through any symlinks) inside `root`."""
    target = Path(root) / relative_path(value, key)
    resolved, base = target.resolve(), Path(root).resolve()
    if resolved != base and not resolved.is_relative_to(base):
        raise ValueError(f"{key}={value!r} resolves to {resolved}, outside the output root {base} (a symlink?)")
    return target
