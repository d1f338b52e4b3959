"""Output paths named in recipes stay inside the run's output root, and never replace its data.

A recipe is configuration that travels (deployment parameters, `--set` overrides, shared YAML),
so a path in it must not be able to write elsewhere: absolute paths and `..` are refused when
the recipe is validated, and a symlink that leads outside the root is refused when the path is
used. Publishing replaces its folder wholesale (atomically), so the path must also not name the
root itself (`.` would replace the whole run with the dataset) or a folder that holds anything
but an earlier published dataset (`labeled` would delete the stage's shards).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath


def relative_path(value: str, key: str) -> str:
    """`value` if it is a relative path without `..` naming a folder below the root; else a
    ValueError naming `key`."""
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if not value.strip() or PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute():
        raise ValueError(f"{key}={value!r}: must be a relative path inside the output root")
    if ".." in parts:
        raise ValueError(f"{key}={value!r}: '..' would leave the output root")
    if not parts:  # ".", "./": the root itself
        raise ValueError(f"{key}={value!r}: names the output root itself; give a folder inside it")
    return value


def inside_root(root: Path, value: str, key: str) -> Path:
    """`root / value`, after checking that it resolves (through any symlinks) strictly inside `root`."""
    target = Path(root) / relative_path(value, key)
    resolved, base = target.resolve(), Path(root).resolve()
    if resolved == base:
        raise ValueError(f"{key}={value!r} resolves to the output root itself, {base} (a symlink?)")
    if not resolved.is_relative_to(base):
        raise ValueError(f"{key}={value!r} resolves to {resolved}, outside the output root {base} (a symlink?)")
    return target


def replaceable(folder: Path, expected: set[str], key: str, value: str) -> Path:
    """`folder`, if it is absent or holds only entries named in `expected` (what an earlier run put
    there); else a ValueError naming `key`: replacing it would delete data that is not ours."""
    if Path(folder).is_dir():
        others = sorted(p.name for p in Path(folder).iterdir() if p.name not in expected)
        if others:
            raise ValueError(
                f"{key}={value!r}: {folder} already holds {others[:5]}, not an earlier published dataset; "
                "refusing to replace it (choose another folder)"
            )
    elif Path(folder).exists():
        raise ValueError(f"{key}={value!r}: {folder} is a file, not a folder; refusing to replace it")
    return folder
