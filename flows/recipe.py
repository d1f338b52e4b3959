"""Recipes: one typed configuration per run, loaded from YAML and overridable key by key.

A recipe names its models once, by role (`models:` — e.g. `generator`, `completer`, `judge`,
`student`, each a full engine config), and each stage's section names the roles it uses (by
default the role named like the purpose: `label.roles.judge` is `judge`). A role a stage uses but
`models:` lacks is an error naming it: there is no default model. Every section is a pydantic
model that forbids unknown keys, so a typo in a recipe, a `--set` override or a deployment
parameter is an error, never silently ignored. The recipe type itself has one section per stage
of the pipeline (`flows/pipeline.py`, `Pipeline.recipe_model`), which loads a pipeline's recipes
(`load_recipe`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stages.base import StageConfig
from stages.engine import EngineConfig
from stages.executor import ExecutorConfig

RECIPES = Path(__file__).parent / "recipes"


class RecipeBase(BaseModel):
    """The keys every recipe has; the pipeline adds one section per stage."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    seed: int = 0
    models: dict[str, EngineConfig] = {}  # role -> engine config
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    def sections(self) -> dict[str, StageConfig]:
        return {name: value for name, value in self if isinstance(value, StageConfig)}

    def models_for(self, section: StageConfig) -> dict[str, EngineConfig]:
        """Purpose -> engine config, for the roles `section` uses."""
        return {purpose: self.models[role] for purpose, role in section.roles_used().items()}

    @model_validator(mode="after")
    def _roles_defined(self) -> RecipeBase:
        missing = [
            (stage, purpose, role)
            for stage, section in self.sections().items()
            for purpose, role in section.roles_used().items()
            if role not in self.models
        ]
        if missing:
            uses = "; ".join(f"stage {s!r} uses model role {r!r} (its {p}: {s}.roles.{p})" for s, p, r in missing)
            raise ValueError(
                f"recipe {self.name!r}: {uses}, but `models:` defines only {sorted(self.models)}. "
                f"Define models.{missing[0][2]} (e.g. {{model: tiny:teacher}}, the embedded teacher, or a model id)"
            )
        return self


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


def load_tree(recipe: str | dict, overrides: dict[str, Any] | None = None) -> dict:
    """A recipe's plain tree from a name (`flows/recipes/NAME.yaml`), a YAML path or a mapping,
    with dotted-key overrides applied. YAML aliases are copied apart first: an anchor shared by
    two roles is a shorthand for equal settings, and overriding one role must not change the other."""
    if isinstance(recipe, dict):
        tree = recipe
    else:
        path = Path(recipe)
        if not path.suffix:
            path = RECIPES / f"{recipe}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in RECIPES.glob("*.yaml"))
            raise FileNotFoundError(f"no recipe {recipe!r}; known recipes: {known}")
        tree = yaml.safe_load(path.read_text()) or {}
    tree = json.loads(json.dumps(tree))
    for key, value in (overrides or {}).items():
        _set(tree, key, value)
    return tree
