"""The `evaluate` Prefect flow: a model's thinking scored, not only its answers, for one or more models.

Evaluation is a pipeline of its own made of the curate pipeline's stages (problems, generate,
label; no copies) plus `score` (`stages/evaluate/stage.py`). Each model runs it under
`<out>/<model>/` as the `generator` role: a name that is one of the recipe's roles uses that
role's engine config, any other name (`tiny:student`, a Hub id, a checkpoint path) the recipe's
`generator` settings with that model. Stages resume as in `curate`. The leaderboard
(`<out>/leaderboard.json`) holds every model's summary; `compare` says where two differ beyond
their intervals.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from flows.curate import artifact_key, run_pipeline
from flows.pipeline import PIPELINE, Pipeline, Stage
from flows.recipe import RecipeBase
from stages.evaluate.stage import SUMMARY, ScoreConfig, run_score
from stages.secrets import scrub

EVALUATION = Pipeline(
    (
        PIPELINE["problems"],
        PIPELINE["generate"],
        PIPELINE["label"],
        Stage("score", ScoreConfig, ("label",), "scores", run=run_score, rewrites=True,
              about="per-sample scores and the model's summary with intervals"),
    )
)  # fmt: skip
SPEC = "flows.evaluate:EVALUATION"
# The leaderboard's columns: (label, section of the summary, metric).
HEADLINE = [
    ("pass@1", "answers", "pass@1"),
    ("maj@8", "answers", "maj@8"),
    ("thinking acc", "thinking", "thinking_accuracy"),
    ("agreement", "thinking", "agreement"),
    ("first-error rate", "first_errors", "first_error_rate"),
    ("step AUROC", "calibration", "step_auroc"),
    ("step ECE", "calibration", "step_ece"),
    ("answer ECE", "calibration", "answer_ece"),
]


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


def metric(summary: dict, section: str, name: str) -> list[float | None]:
    """[estimate, low, high] of one figure of a summary (nulls where it does not apply)."""
    return list(summary.get(section, {}).get(name) or [None, None, None])


def leaderboard_markdown(board: dict[str, dict]) -> str:
    """One row per model, each figure as `estimate [low, high]`."""
    num = lambda x: "?" if x is None else f"{x:.3f}"  # noqa: E731
    fmt = lambda v: "-" if v[0] is None else f"{num(v[0])} [{num(v[1])}, {num(v[2])}]"  # noqa: E731
    header = "| model | problems | " + " | ".join(h for h, _, _ in HEADLINE) + " |"
    lines = [header, "| --- " * (len(HEADLINE) + 2) + "|"]
    for model, s in board.items():
        cells = [fmt(metric(s, section, name)) for _, section, name in HEADLINE]
        lines.append(f"| `{model}` | {s['problems']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(a: dict, b: dict) -> list[dict]:
    """Per headline figure: B - A, and whether the two intervals overlap (no overlap: a
    difference beyond the intervals)."""
    out = []
    for label, section, name in HEADLINE:
        (ea, la, ha), (eb, lb, hb) = metric(a, section, name), metric(b, section, name)
        if ea is None or eb is None:
            continue
        known = None not in (la, ha, lb, hb)
        overlap = not (hb < la or ha < lb) if known else None
        out.append({"metric": label, "a": ea, "b": eb, "delta": eb - ea, "overlap": overlap})
    return out


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
    text = scrub(f"## evaluate `{base.name}`\n\n{leaderboard_markdown(board)}")
    create_markdown_artifact(text, key=artifact_key("evaluate", base.name), description="leaderboard")
    return board


def load_summary(path: str | Path) -> dict:
    """A model's summary from its evaluation folder (`<out>/<model>/`) or a summary file."""
    path = Path(path)
    found = path if path.is_file() else EVALUATION.path("score", path) / SUMMARY
    return json.loads(found.read_text())
