"""The `improve` Prefect flow: curate -> train -> evaluate, in rounds (CASPO's iterative DPO).

Round r curates with the current policy in the recipe's `policy_roles` of the curate recipe
(by default it samples the traces, completes the rollouts and is the frontier's student; the judge
stays the teacher), on the train split; trains the policy on that round's published dataset
(`train`, by default DPO on step pairs) into `round-<r>/checkpoint`; and evaluates the new
checkpoint on the held-out evaluation recipe. The base policy is evaluated once as round 0. Each
round's checkpoint, data counts and headline figures go to `round-<r>/round.json` and the whole
run to `<out>/improve.json`; a re-run resumes (curate and evaluate resume per stage, a finished
checkpoint is kept).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from flows.curate import curate
from flows.evaluate import evaluate
from flows.recipe import load_tree
from stages.eval_results import HEADLINE, metric
from stages.train.stage import RECORD, TrainConfig, train


class ImproveRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    policy: str = "tiny:student"  # the round-0 policy: a model name, `tiny:NAME` or checkpoint path
    rounds: int = Field(1, ge=1)
    curate: str = "demo"  # the curate recipe each round runs ...
    curate_overrides: dict[str, Any] = {}  # ... with these dotted-key overrides (e.g. the train split)
    policy_roles: list[str] = ["generator", "completer", "student"]  # the curate roles the policy plays
    evaluate: str = "eval-demo"  # the held-out evaluation recipe ...
    evaluate_overrides: dict[str, Any] = {}
    train: dict[str, Any] = {"method": "dpo", "kinds": ["step"]}  # TrainConfig fields but model and dataset


def load_improve(recipe: str | dict | BaseModel, overrides: dict[str, Any] | None = None) -> ImproveRecipe:
    if isinstance(recipe, ImproveRecipe) and not overrides:
        return recipe
    tree = recipe.model_dump() if isinstance(recipe, BaseModel) else recipe
    return ImproveRecipe.model_validate(load_tree(tree, overrides))


def curate_overrides(recipe: ImproveRecipe, policy: str) -> dict[str, Any]:
    """The round's curate overrides: the recipe's, and the policy in each of its roles."""
    return {**recipe.curate_overrides, **{f"models.{role}.model": policy for role in recipe.policy_roles}}


def headline(summary: dict) -> dict[str, list]:
    return {label: metric(summary, section, name) for label, section, name in HEADLINE}


def _evaluate(recipe: ImproveRecipe, model: str, out: Path) -> dict:
    board = evaluate(recipe.evaluate, [model], str(out), recipe.evaluate_overrides)
    return board[model]


def _pairs(run: dict) -> dict[str, int]:
    stats = run["stages"].get("pairs", {})
    return {k.removeprefix("pairs_"): v for k, v in stats.items() if k.startswith("pairs_") and "dropped" not in k}


@flow(name="improve")
def improve(
    recipe: str | dict | BaseModel = "improve-demo", out: str | None = None, overrides: dict | None = None
) -> dict:
    """Run `recipe`'s rounds into `out` (default `out/<recipe name>`); returns the run's record."""
    recipe = load_improve(recipe, overrides)
    root = Path(out or f"out/{recipe.name}").resolve()
    root.mkdir(parents=True, exist_ok=True)
    logger = get_run_logger()
    policy = recipe.policy
    rounds = [{"round": 0, "policy": policy, "eval": headline(_evaluate(recipe, policy, root / "round-0" / "eval"))}]
    for r in range(1, recipe.rounds + 1):
        folder = root / f"round-{r}"
        run = curate(recipe.curate, str(folder / "curate"), curate_overrides(recipe, policy))
        checkpoint = folder / "checkpoint"
        if (checkpoint / RECORD).is_file():
            trained = json.loads((checkpoint / RECORD).read_text())
        else:
            dataset = run["stages"]["publish"]["path"]
            trained = train(TrainConfig(**{**recipe.train, "model": policy, "dataset": dataset}), checkpoint)
        policy = str(checkpoint)
        summary = _evaluate(recipe, policy, folder / "eval")
        row = {"round": r, "policy": policy, "pairs": _pairs(run), "train": trained, "eval": headline(summary)}
        (folder / "round.json").write_text(json.dumps(row, indent=2))
        logger.info("round %d: %s", r, json.dumps({k: v[0] for k, v in row["eval"].items()}))
        rounds.append(row)
    record = {"recipe": recipe.model_dump(mode="json"), "out": str(root), "rounds": rounds, "policy": policy}
    (root / "improve.json").write_text(json.dumps(record, indent=2))
    return record


__all__ = ["ImproveRecipe", "curate_overrides", "improve", "load_improve"]
