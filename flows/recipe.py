"""Recipes: one typed configuration per run, loaded from YAML and overridable key by key.

Every stage's configuration is a pydantic model that forbids unknown keys, so a typo in a
recipe, a `--set` override or a deployment parameter is an error, never silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from stages.configs import ExportConfig
from stages.executor import ExecutorConfig
from stages.frontier import FrontierConfig
from stages.generate import GenerateConfig
from stages.label.stage import LabelConfig
from stages.pairs.stage import PairsConfig
from stages.problems.sources import ProblemSourceConfig
from stages.publish.stage import PublishConfig

RECIPES = Path(__file__).parent / "recipes"


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    seed: int = 0
    problems: ProblemSourceConfig = Field(default_factory=ProblemSourceConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    label: LabelConfig = Field(default_factory=LabelConfig)
    pairs: PairsConfig = Field(default_factory=PairsConfig)
    frontier: FrontierConfig = Field(default_factory=FrontierConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)


def _set(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
        if not isinstance(tree, dict):
            raise ValueError(f"cannot set {dotted!r}: {key!r} is not a section")
    tree[leaf] = value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key.sub=value` strings to a dict; values are parsed as YAML (numbers, booleans, lists)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not key=value")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def load_recipe(name_or_path: str, overrides: dict[str, Any] | None = None) -> Recipe:
    """A recipe by name (`flows/recipes/NAME.yaml`) or path, with dotted-key overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPES / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in RECIPES.glob("*.yaml"))
        raise FileNotFoundError(f"no recipe {name_or_path!r}; known recipes: {known}")
    tree = yaml.safe_load(path.read_text()) or {}
    for key, value in (overrides or {}).items():
        _set(tree, key, value)
    return Recipe.model_validate(tree)
