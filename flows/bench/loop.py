"""`thoughtmill bench loop`: does a student trained on the curated corpus beat one trained naively?

Teacher data: the curate pipeline (recipe `demo`: the tiny teacher generates, labels and pairs) on
`train`-split problems. Every arm starts from the same base student and is measured by the
`evaluate` flow on `eval`-split problems (never curated, never trained on), each figure with its
bootstrap 95% interval over problems. Settings, seeds and splits are fixed here before any run.

- `base`: the tiny student as shipped;
- `sft-all`: SFT on every teacher trace (the naive baseline);
- `sft-verified`: SFT on the teacher traces whose final answer verifies (rejection sampling);
- `sft-curated`: SFT on the published `sft` config (correct, thinking agrees with the answer,
  flawless by consensus, within the student's frontier); the three SFT sets are cut (seeded) to
  the same budget of teacher completion tokens, the smallest one's;
- from `sft-curated`, the `improve` loop's round: that policy samples in `policy_roles` and the
  pipeline curates its traces (the teacher judges), then DPO on its step-confidence pairs
  (`caspo-1`; CASPO), on its fidelity pairs (`fidelity`), on its RLSF trace pairs (`rlsf`); and a
  second round from `caspo-1` (`caspo-2`).

The first run's settings (`TRY_1`) and figures are in the README beside the current defaults.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from flows.curate import curate
from flows.evaluate import evaluate
from flows.improve import ImproveRecipe, curate_overrides
from schemas import SFT
from stages.answers import split_thinking
from stages.arithmetic.truth import problem_step_truth
from stages.eval_results import compare, leaderboard_markdown
from stages.export.stage import sft_row
from stages.publish.stage import PublishConfig, publish
from stages.shards import to_table
from stages.train.stage import TrainConfig, train


class LoopBench(BaseModel):
    train_problems: int = 160
    samples: int = 8
    eval_problems: int = 200
    eval_samples: int = 4
    sft: dict = {"method": "sft", "epochs": 2, "learning_rate": 2e-4, "batch_size": 16, "seed": 0}
    dpo: dict = {"method": "dpo", "epochs": 1, "learning_rate": 1e-5, "batch_size": 8, "beta": 0.1, "seed": 0}
    # the teacher completes the rollouts that label the policy's steps: the policy's own (44% accurate)
    # made the first run's step pairs noisy
    policy_roles: list[str] = ["generator", "student"]


# The first run: DPO at 5e-5 with the policy also completing its own rollouts.
TRY_1 = LoopBench(dpo={**LoopBench().dpo, "learning_rate": 5e-5}, policy_roles=["generator", "completer", "student"])


def sft_set(rows: list[dict], budget: int, seed: int) -> tuple[list[dict], int]:
    """Rows in a seeded order until their assistant completions reach `budget` characters (the
    tiny reasoner's tokens are characters); returns the rows and the tokens they hold."""
    order = sorted(rows, key=lambda r: r["trace_id"])
    random.Random(seed).shuffle(order)
    kept, used = [], 0
    for r in order:
        size = len(r["messages"][-1]["content"])
        if used + size > budget:
            continue
        kept.append(r)
        used += size
    return kept, used


def step_pair_quality(dataset: str | Path) -> dict:
    """How often a published step pair's chosen step is right and its rejected step wrong by exact
    arithmetic truth (the pair's last step: its thinking's last paragraph)."""

    def right(problem: str, text: str) -> bool | None:
        steps = [p.strip() for p in split_thinking(text).thinking.split("\n\n") if p.strip()]
        truth = problem_step_truth(problem, steps)
        return truth[-1] if truth else None

    rows = pl.read_parquet(Path(dataset) / "data" / "dpo" / "*.parquet").filter(pl.col("kind") == "step")
    judged = [
        (right(r["prompt"][-1]["content"], r["chosen"][-1]["content"]),
         right(r["prompt"][-1]["content"], r["rejected"][-1]["content"]))
        for r in rows.to_dicts()
    ]  # fmt: skip
    known = [(c, w) for c, w in judged if c is not None and w is not None]
    share = lambda test: round(sum(map(test, known)) / len(known), 3) if known else None  # noqa: E731
    return {
        "pairs": len(judged),
        "chosen_right": share(lambda cw: cw[0]),
        "rejected_wrong": share(lambda cw: not cw[1]),
        "ordered_right": share(lambda cw: cw[0] and not cw[1]),
        "reversed": share(lambda cw: not cw[0] and cw[1]),
    }


def _publish_sft(rows: list[dict], root: Path, name: str) -> str:
    return publish({"sft": to_table(rows, SFT)}, {"name": name}, PublishConfig(path=name, default_config="sft"), root)[
        "path"
    ]


def main(out: str = "out/bench-loop", cfg: LoopBench | None = None) -> dict:
    """Run every arm under `out` (a re-run reuses the teacher's curation; arms are trained again)."""
    cfg, root, start = cfg or LoopBench(), Path(out).resolve(), time.time()
    root.mkdir(parents=True, exist_ok=True)
    loop = ImproveRecipe(name="bench-loop", policy_roles=cfg.policy_roles, curate_overrides={"problems.split": "train",
                         "problems.limit": cfg.train_problems, "generate.sampling.n": cfg.samples})  # fmt: skip
    teacher = curate("demo", str(root / "teacher"), loop.curate_overrides)
    dataset = Path(teacher["stages"]["publish"]["path"])

    traces = pl.read_parquet(dataset / "data" / "traces" / "*.parquet").to_dicts()
    sets = {
        "sft-all": [sft_row(t, "inline") for t in traces],
        "sft-verified": [sft_row(t, "inline") for t in traces if t["final_correct"]],
        "sft-curated": pl.read_parquet(dataset / "data" / "sft" / "*.parquet").to_dicts(),
    }
    budget = min(sum(len(r["messages"][-1]["content"]) for r in rs) for rs in sets.values())
    data = {}
    for name, rows in sets.items():
        kept, tokens = sft_set(rows, budget, seed=0)
        data[name] = {"rows": len(kept), "of": len(rows), "teacher_tokens": tokens,
                      "dataset": _publish_sft(kept, root / "data", name)}  # fmt: skip

    arms = {"base": {"model": "tiny:student"}}
    for name in sets:
        arms[name] = train(TrainConfig(**cfg.sft, dataset=data[name]["dataset"]), root / "arms" / name)

    quality = {"teacher": step_pair_quality(dataset)}

    def dpo_round(policy: str, folder: str, kinds: dict[str, list[str]]) -> None:
        run = curate("demo", str(root / folder), curate_overrides(loop, policy))
        quality[folder] = step_pair_quality(run["stages"]["publish"]["path"])
        for arm, kind in kinds.items():
            train_cfg = TrainConfig(**cfg.dpo, model=policy, dataset=run["stages"]["publish"]["path"], kinds=kind)
            try:
                arms[arm] = train(train_cfg, root / "arms" / arm)
            except ValueError as exc:  # no pairs of that kind: reported, not hidden
                arms[arm] = {"error": str(exc)}

    sft_curated = str(root / "arms" / "sft-curated")
    dpo_round(sft_curated, "round-1", {"caspo-1": ["step"], "fidelity": ["fidelity"], "rlsf": ["trace"]})
    if "path" in arms["caspo-1"]:
        dpo_round(arms["caspo-1"]["path"], "round-2", {"caspo-2": ["step"]})

    models = {name: a.get("path", a.get("model")) for name, a in arms.items() if "error" not in a}
    over = {
        "problems.limit": cfg.eval_problems,
        "generate.sampling.n": cfg.eval_samples,
        "score.ks": [1, cfg.eval_samples],
    }
    board = evaluate("eval-demo", list(models.values()), str(root / "eval"), over)
    by_arm = {name: board[model] for name, model in models.items()}
    versus = {name: compare(by_arm["sft-all"], s) for name, s in by_arm.items() if name != "sft-all"}
    result = {"settings": cfg.model_dump(), "data": data, "arms": arms, "summaries": by_arm, "versus_naive": versus,
              "step_pair_quality": quality,
              "minutes": round((time.time() - start) / 60, 1)}  # fmt: skip
    (root / "loop.json").write_text(json.dumps(result, indent=2, default=str))
    print(report(result))
    return result


def report(result: dict) -> str:
    lines = ["## bench loop: arms from the same base student, eval split (95% intervals over problems)", ""]
    lines.append(leaderboard_markdown(result["summaries"]))
    lines += ["", "Training data:"]
    for name, d in result["data"].items():
        lines.append(f"- {name}: {d['rows']} of {d['of']} traces, {d['teacher_tokens']:,} teacher completion tokens")
    for name, a in result["arms"].items():
        if "rows" in a:
            how = f"{a['config']['method']} on {a['rows']} rows, {a['steps']} steps"
            lines.append(f"- {name}: {how}, loss {a['training_loss']:.4f}")
        elif "error" in a:
            lines.append(f"- {name}: not trained ({a['error']})")
    lines += ["", "Step pairs against exact truth (share of pairs: chosen step right, rejected wrong, both, reversed):"]
    for folder, q in result["step_pair_quality"].items():
        lines.append(f"- {folder}: {q['pairs']} pairs; chosen right {q['chosen_right']}, rejected wrong "
                     f"{q['rejected_wrong']}, both {q['ordered_right']}, reversed {q['reversed']}")  # fmt: skip
    lines += ["", "Against sft-all, the naive baseline (B - A; beyond = the intervals do not overlap):"]
    for name, rows in result["versus_naive"].items():
        beyond = [f"{r['metric']} {r['delta']:+.3f}" for r in rows if r["overlap"] is False]
        lines.append(f"- {name}: " + (", ".join(beyond) if beyond else "no difference beyond the intervals"))
    lines.append(f"\n{result['minutes']} minutes")
    return "\n".join(lines)
