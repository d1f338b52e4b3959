"""The pipeline spec: every stage of a run, in order, in one place.

Each entry says what a stage is called (also the name of its recipe section), which stages'
outputs it reads, the folder it writes under the run's output root, and what runs it: a
datatrove step (`ShardStage`, run under the recipe's executor and resumable per chunk) or a
function run in the flow's process. The stage's section says which model roles it uses
(`roles_used`). The `curate` flow, the recipe type, fingerprints, the reliability harness, the
benches and the inspector all read it; folder names live only here.

Adding a stage is one package, `stages/<name>/` with its config and its step or function in
`stage.py`, plus one entry below; so the table reads as a map of the folders.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, create_model

from flows.fingerprints import code_hash, digest, weights_stamp
from flows.recipe import RecipeBase, load_tree
from stages.base import ShardStage, StageConfig, StageContext
from stages.export.stage import ExportConfig, run_export
from stages.frontier.stage import Frontier, FrontierConfig
from stages.generate.stage import Generate, GenerateConfig
from stages.import_.stage import TraceSourceConfig, run_import
from stages.label.stage import Label, LabelConfig
from stages.pairs.stage import Pairs, PairsConfig
from stages.problems.stage import ProblemSourceConfig, run_problems
from stages.publish.stage import PublishConfig, run_publish
from stages.report.stage import ReportConfig, run_report

DEFAULT = "flows.pipeline:PIPELINE"


@dataclass(frozen=True)
class Stage:
    """One entry of the pipeline. `name` is also its recipe section (typed by `config`)."""

    name: str
    config: type[StageConfig]
    inputs: tuple[str, ...] = ()  # the stages whose outputs it reads
    output: str | None = None  # its folder (or file) under the output root; None: its config says
    step: type[ShardStage] | None = None  # run under the executor, resumable chunk by chunk
    run: Callable[[StageContext], dict] | None = None  # or a function run in the flow's process
    rewrites: bool = False  # recomputed on every run (cheap, and it reflects the whole run)
    about: str = ""

    @property
    def modules(self) -> tuple[str, ...]:
        """The modules whose code makes this stage's outputs (with what they import)."""
        return (self.config.__module__, (self.step or self.run).__module__, *self.config.discovered_modules())


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[Stage, ...]
    recipe_base: type[RecipeBase] = RecipeBase  # the recipe's keys other than the stages' sections
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(s.name for s in self.stages))
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"stage names repeat: {self.names}")
        for i, stage in enumerate(self.stages):
            if (stage.step is None) == (stage.run is None):
                raise ValueError(f"stage {stage.name!r}: give exactly one of step or run")
            if stage.step is not None and len(stage.inputs) != 1:
                raise ValueError(f"stage {stage.name!r}: a step reads exactly one stage's shards")
            if late := [n for n in stage.inputs if n not in self.names[:i]]:
                raise ValueError(f"stage {stage.name!r} reads {late}, which no earlier stage writes")
            if stage.name in self.recipe_base.model_fields:
                raise ValueError(f"stage name {stage.name!r} is a recipe key of its own")

    def __getitem__(self, name: str) -> Stage:
        if name not in self.names:
            raise KeyError(f"no stage {name!r}; stages: {list(self.names)}")
        return self.stages[self.names.index(name)]

    def with_stage(self, stage: Stage) -> Pipeline:
        """This pipeline with `stage` appended."""
        return Pipeline((*self.stages, stage), self.recipe_base)

    @cached_property
    def recipe_model(self) -> type[RecipeBase]:
        """The recipe type: the common keys plus one typed section per stage."""
        sections: dict[str, Any] = {s.name: (s.config, Field(default_factory=s.config)) for s in self.stages}
        return create_model("Recipe", __base__=self.recipe_base, __module__=__name__, **sections)

    def load(self, recipe: str | dict | BaseModel, overrides: dict[str, Any] | None = None) -> RecipeBase:
        """A recipe of this pipeline from a name (`flows/recipes/NAME.yaml`), a YAML path or a
        mapping, with dotted-key `overrides`; or a recipe object as it is."""
        if isinstance(recipe, self.recipe_model) and not overrides:
            return recipe
        if isinstance(recipe, BaseModel):
            if overrides:
                raise ValueError("overrides apply to a recipe given by name, path or mapping, not to a Recipe object")
            return self.recipe_model.model_validate(recipe.model_dump())
        return self.recipe_model.model_validate(load_tree(recipe, overrides))

    def path(self, name: str, root: Path) -> Path | None:
        output = self[name].output
        return Path(root) / output if output else None

    def context(self, name: str, root: Path, config: StageConfig, recipe=None, summary=None) -> StageContext:
        """What the function stage `name` is given, for a run under `root`."""
        inputs, output = self.inputs_of(name, root), self.path(name, root)
        return StageContext(Path(root), config, inputs, output, recipe, summary or {})

    def inputs_of(self, name: str, root: Path) -> dict[str, Path | None]:
        """Producing stage name -> its output path, for what stage `name` reads."""
        return {n: self.path(n, root) for n in self[name].inputs}

    def fingerprints(self, recipe: RecipeBase) -> dict[str, str]:
        """Per stage: a hash of its code, its recipe section, the engine configs of the roles it
        uses (with their local weights' stamps) and the fingerprints of the stages it reads
        (`flows/fingerprints.py`)."""
        out: dict[str, str] = {}
        for s in self.stages:
            section = getattr(recipe, s.name)
            models = {
                p: {**m.model_dump(mode="json"), "weights": weights_stamp(m.model)}
                for p, m in recipe.models_for(section).items()
            }
            upstream = [out[n] for n in s.inputs]
            out[s.name] = digest(code_hash(s.modules), section.model_dump(mode="json"), models, upstream)
        return out

    def markdown(self) -> str:
        """The pipeline as a table (the README's map of the project; a test keeps them equal)."""
        lines = ["| stage | reads | writes | runs as | model roles (default) | what it does |", "| --- " * 6 + "|"]
        for s in self.stages:
            runs = f"`{s.step.__module__}.{s.step.__name__}`" if s.step else f"`{s.run.__module__}.{s.run.__name__}`"
            roles = ", ".join(f"`{r}`" for r in getattr(s.config, "PURPOSES", ())) or "-"
            reads = ", ".join(s.inputs) or "-"
            writes = f"`{s.output}`" if s.output else "`publish.path`"
            lines.append(f"| `{s.name}` | {reads} | {writes} | {runs} | {roles} | {s.about} |")
        return "\n".join(lines)


def load_pipeline(ref: str = DEFAULT) -> Pipeline:
    """The pipeline named `module:attribute` (the flow's `pipeline` parameter)."""
    module, _, attr = ref.partition(":")
    found = getattr(importlib.import_module(module), attr or "PIPELINE", None)
    if not isinstance(found, Pipeline):
        raise ValueError(f"{ref!r} is not a Pipeline")
    return found


def load_recipe(recipe: str | dict, overrides: dict[str, Any] | None = None, pipeline: str | None = None):
    """A recipe of the pipeline `pipeline` (default: the project's, `PIPELINE`)."""
    return load_pipeline(pipeline or DEFAULT).load(recipe, overrides)


PIPELINE = Pipeline(
    (
        Stage("problems", ProblemSourceConfig, (), "problems", run=run_problems,
              about="bundled arithmetic or a Hub dataset, sharded"),
        Stage("generate", GenerateConfig, ("problems",), "traces", step=Generate,
              about="thinking traces with token logprobs, split into steps with confidence"),
        Stage("label", LabelConfig, ("generate",), "labeled", step=Label,
              about="registered step labelers, their consensus, fidelity metrics"),
        Stage("pairs", PairsConfig, ("label",), "pairs", step=Pairs,
              about="step, trace and fidelity preference pairs"),
        Stage("frontier", FrontierConfig, ("label",), "frontier", step=Frontier,
              about="student pass rate and IFD: what the student can learn"),
        Stage("export", ExportConfig, ("label", "pairs", "frontier"), "configs", run=run_export, rewrites=True,
              about="the sft, prm, dpo and traces configs TRL loads"),
        Stage("publish", PublishConfig, ("export",), None, run=run_publish, rewrites=True,
              about="dataset folder or Hub repo with card and figures"),
        Stage("report", ReportConfig, ("problems", "generate", "label", "pairs", "frontier"), "report.html",
              run=run_report, rewrites=True, about="the trace inspector page"),
    )
)  # fmt: skip
Recipe = PIPELINE.recipe_model  # the project recipe type, importable by name (pickle finds its class here)

# Bring your own traces: existing traces imported (no generate stage), then labeled, paired,
# filtered and published with the same stages and configs as above. `import` writes the `traces`
# folder (and `problems` beside it), so every later stage finds its inputs where it does above.
RELABEL = Pipeline(
    (
        Stage("import", TraceSourceConfig, (), "traces", run=run_import,
              about="existing traces (Hub dataset or local files) through a column mapping, split into steps"),
        replace(PIPELINE["label"], inputs=("import",)),
        *(PIPELINE[name] for name in ("pairs", "frontier", "export", "publish")),
        replace(PIPELINE["report"], inputs=("import", "label", "pairs", "frontier")),
    )
)  # fmt: skip
