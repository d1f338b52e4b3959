"""The `evaluate` Prefect flow: a model's thinking scored, not only its answers, for one or more models.

Evaluation is a pipeline of its own made of the curate pipeline's stages (problems, generate,
label; no copies) plus `score` (`stages/score/stage.py`). Each model runs it under
`<out>/<model>/` as the `generator` role: a name that is one of the recipe's roles uses that
role's engine config, any other name (`tiny:student`, a Hub id, a checkpoint path) the recipe's
`generator` settings with that model. Stages resume as in `curate`. The leaderboard
(`<out>/leaderboard.json`) holds every model's summary; the recipe's `results` section publishes
the scores and summaries with a card (`<out>/results/`, or the Hub); `<out>/report.html` is the
inspector with an Evaluation tab; `compare` says where two differ beyond their intervals.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.curate import artifact_key, run_pipeline
from flows.pipeline import PIPELINE, Pipeline, Stage
from flows.recipe import RecipeBase
from stages.depth.stage import DeepThinking, DeepThinkingConfig
from stages.eval_results import compare, leaderboard_markdown, publish_results
from stages.publish.stage import PublishConfig
from stages.report.stage import build_report
from stages.score.stage import SCORES, SUMMARY, ScoreConfig, run_score
from stages.secrets import scrub

__all__ = ["EVALUATION", "compare", "evaluate", "for_model", "leaderboard_markdown", "load_summary", "slug"]


class EvaluationRecipe(RecipeBase):
    # where the scores, the summaries and their card are published (a folder under `out`, or the Hub)
    results: PublishConfig = Field(default_factory=lambda: PublishConfig(path="results", default_config="summary"))


EVALUATION = Pipeline(
    (
        PIPELINE["problems"],
        PIPELINE["generate"],
        PIPELINE["label"],
        Stage("depth", DeepThinkingConfig, ("label",), "depth", step=DeepThinking,
              about="each trace's deep-thinking ratio under its model (transformers hidden states)"),
        Stage("score", ScoreConfig, ("label", "depth"), "scores", run=run_score, rewrites=True,
              about="per-sample scores and the model's summary with intervals"),
    ),
    EvaluationRecipe,
)  # fmt: skip
SPEC = "flows.evaluate:EVALUATION"


def slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-")


def for_model(recipe: RecipeBase, model: str) -> RecipeBase:
    """`recipe` with `model` as its generator: a role's config, or the generator's with that model."""
    if model in recipe.models:
        generator = recipe.models[model]
    elif "generator" in recipe.models:
        generator = recipe.models["generator"].model_copy(update={"model": model})
    else:
        raise ValueError(f"recipe {recipe.name!r}: no models.generator to take settings from for {model!r}")
    return recipe.model_copy(update={"models": {**recipe.models, "generator": generator}})


@flow(name="evaluate")
def evaluate(
    recipe: str | dict | BaseModel = "eval-demo",
    models: list[str] | None = None,
    out: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict:
    """Evaluate each of `models` (default: the recipe's generator) on the recipe's problems into
    `out/<model>/` (default `out/<recipe name>`); returns and writes the leaderboard."""
    base = EVALUATION.load(recipe, overrides)
    root = Path(out or f"out/{base.name}").resolve()
    board = {}
    for model in models or [base.models["generator"].model]:
        run = run_pipeline(SPEC, for_model(base, model), root / slug(model))
        board[model] = json.loads(Path(run["stages"]["score"]["summary"]).read_text())
    (root / "leaderboard.json").write_text(json.dumps(board, indent=2))
    scores = [EVALUATION.path("score", root / slug(m)) / SCORES for m in board]
    meta = {"name": base.name, "description": base.description}
    published = publish_results(board, scores, meta, base.results, root)
    (root / "results.json").write_text(json.dumps(published, indent=2))
    build_report(root, root / "report.html", layout=report_layout())
    text = scrub(f"## evaluate `{base.name}`\n\n{leaderboard_markdown(board)}")
    create_markdown_artifact(text, key=artifact_key("evaluate", base.name), description="leaderboard")
    return board


def report_layout() -> dict[str, Path]:
    """Where the inspector finds each stage's output inside a model's folder of an evaluation."""
    return {n: Path(EVALUATION[n].output) for n in ("generate", "label", "depth", "score")}


def load_summary(path: str | Path) -> dict:
    """A model's summary from its evaluation folder (`<out>/<model>/`) or a summary file."""
    path = Path(path)
    found = path if path.is_file() else EVALUATION.path("score", path) / SUMMARY
    return json.loads(found.read_text())
