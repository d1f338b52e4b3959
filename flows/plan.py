"""`thoughtmill plan`: what a recipe will need, worked out before anything starts.

It validates the recipe (its sections and roles, as a run would), then per stage of the pipeline
lists the engines the stage holds at once, the GPUs they take, the tokens it will generate and the
hours that costs at a given throughput, and fails early when engines that must coexist cannot fit
on the node. It reads only local files (checkpoint headers, the Hugging Face cache, a finished
run's `run.json`): it starts no engine, imports no vLLM and touches no network.
Where the engines go, and whether they fit, is `flows/placement.py`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import get_args

from flows.pipeline import DEFAULT, load_pipeline
from flows.placement import EnginePlan, PlanError, place, rank_gpus, stage_engines
from stages.arithmetic.space import require_available
from stages.arithmetic.trees import Split
from stages.label.registry import LABELERS

# Tokens the label and pairs stages generate per generated trace token, by source, from the demo's
# run.json (`make run`): label with its cost levers on (adaptive k, rollouts stopped at the
# thinking's end); pairs' next-step sampling from a run that sampled it (the demo now draws step
# pairs from the label rollouts, and a recipe that does so plans no pairs tokens). Recipe-
# independent defaults only: `--from-run` takes them from a finished run of the recipe planned.
DEMO_RATIOS: dict[str, dict[str, float]] = {
    "label": {"mc": 31026 / 41948, "judge": 41351 / 41948, "symbolic": 0.0, "resolve": 4069 / 41948},
    "pairs": {"next_step": 257637 / 41948},
}


@dataclass
class StagePlan:
    stage: str
    engines: list[EnginePlan] = field(default_factory=list)
    gpus: int = 0
    tokens: float | None = 0.0
    tokens_at_max: float | None = 0.0
    gpu_hours: float | None = None
    wall_hours: float | None = None


def load_ratios(run_json: str | Path | None) -> dict[str, dict[str, float]]:
    """Label and pairs tokens per trace token, by source, from a finished run (else the demo's)."""
    if run_json is None:
        return DEMO_RATIOS
    path = Path(run_json)
    stages = json.loads((path / "run.json" if path.is_dir() else path).read_text()).get("stages", {})
    trace = stages.get("generate", {}).get("tokens_generated")
    if not trace:
        raise PlanError(f"{path}: no generate tokens_generated (a stage skipped as complete records no tokens)")
    return {
        s: {k.removesuffix("_tokens"): v / trace for k, v in stages.get(s, {}).items() if k.endswith("_tokens")}
        for s in ("label", "pairs")
    }


def problem_count(section) -> tuple[int, str]:
    if section.kind == "arithmetic":
        if section.split not in get_args(Split):
            raise PlanError(f"problems.split {section.split!r}: the bundled splits are {list(get_args(Split))}")
        require_available(section.split, section.limit)  # the run's own check: too few is an error
        return section.limit, f"problems.limit of the bundled {section.split!r} split"
    return section.limit, f"problems.limit, at most: {section.dataset} {section.split!r} is not read offline"


def stage_tokens(name: str, section, recipe, problems: int, fraction: float, ratios: dict) -> dict[str, float] | None:
    """Purpose -> tokens the stage generates with it; None for a stage this plan cannot estimate.
    Label and pairs work on the traces, so they scale with the generate stage's tokens."""
    sampling = recipe.generate.sampling
    trace = problems * sampling.n * sampling.max_tokens * fraction
    if name == "generate":
        return {"generator": trace}
    if name == "label":
        out: dict[str, float] = {}
        for lab in section.labelers:
            for purpose in LABELERS[lab].uses[:1]:  # a labeler's tokens come from its first purpose
                out[purpose] = out.get(purpose, 0.0) + trace * ratios["label"].get(lab, 0.0)
        if section.consensus.resolve == "evidence":  # disputes rechecked with more rollouts
            out["completer"] = out.get("completer", 0.0) + trace * ratios["label"].get("resolve", 0.0)
        return out
    if name == "pairs":
        # next-step sampling and its rollouts (`next_step_rollout`); none when pairs come from the label rollouts
        sampled = sum(ratios["pairs"].values())
        return {"generator": trace * sampled} if "generator" in section.purposes_used() else {}
    if name == "frontier":
        return {"student": problems * section.samples * section.sampling.max_tokens * fraction}
    return {} if not section.engine_roles() else None


def plan(
    recipe_name: str | dict = "demo",
    overrides: dict | None = None,
    gpus: int = 8,
    gpu_memory_gb: float = 80.0,
    tok_per_s_per_gpu: float | None = None,
    mean_tokens_fraction: float = 0.5,
    from_run: str | Path | None = None,
    pipeline: str = DEFAULT,
) -> dict:
    """The plan of `recipe_name`: per stage the engines, GPUs, tokens and hours; raises `PlanError`
    (or the recipe's own validation error) when the recipe cannot run on `gpus` x `gpu_memory_gb`."""
    spec = load_pipeline(pipeline)
    recipe = spec.load(recipe_name, overrides)
    ratios, ex = load_ratios(from_run), recipe.executor
    problems, problems_from = problem_count(recipe.problems)
    ranks = max(1, min(ex.tasks, ex.workers))
    per_rank = getattr(ex, "gpus_per_worker", None) or (ex.kind != "local" and ex.gpus_per_task) or gpus // ranks
    node = gpus if ex.kind == "local" else max(gpus, ranks * per_rank)  # slurm/ray: ranks span nodes
    per_gpu = per_rank if ex.kind != "local" else ex.gpus_per_worker  # None: each stage's TP
    stages = []
    for s in spec.stages:
        section = getattr(recipe, s.name)
        tokens = stage_tokens(s.name, section, recipe, problems, mean_tokens_fraction, ratios)
        at_max = stage_tokens(s.name, section, recipe, problems, 1.0, ratios)
        sp = StagePlan(s.name, stage_engines(recipe, section, tokens))
        if not sp.engines:
            continue
        slices = rank_gpus(ex, sp.engines, ranks, per_rank, node)
        sp.gpus = place(s.name, sp.engines, slices, node, gpu_memory_gb)
        sp.tokens = None if tokens is None else sum(tokens.values())
        sp.tokens_at_max = None if at_max is None else sum(at_max.values())
        if tok_per_s_per_gpu and sp.tokens is not None:
            # engines of a stage are called in turn (a labeler after another), each on its TP GPUs
            # in every rank; its GPUs are held for the whole stage, busy or not; remote time unknown
            seconds = sum(
                e.tokens / (tok_per_s_per_gpu * e.tp * (ranks if e.where == "in-process" else 1))
                for e in sp.engines
                if e.where != "remote"
            )
            sp.wall_hours = seconds / 3600
            sp.gpu_hours = sp.wall_hours * sp.gpus
        stages.append(sp)
    known = [s for s in stages if s.tokens is not None]
    total = {
        "tokens": sum(s.tokens for s in known),
        "gpu_hours": sum(s.gpu_hours for s in known) if tok_per_s_per_gpu else None,
        "wall_hours": sum(s.wall_hours for s in known) if tok_per_s_per_gpu else None,
        "max_gpus_at_once": max((s.gpus for s in stages), default=0),
    }
    return {
        "recipe": recipe.name,
        "node": {"gpus": gpus, "gpu_memory_gb": gpu_memory_gb, "ranks": ranks, "gpus_per_rank": per_gpu},
        "problems": problems,
        "problems_from": problems_from,
        "mean_tokens_fraction": mean_tokens_fraction,
        "tok_per_s_per_gpu": tok_per_s_per_gpu,
        "ratios": ratios,
        "ratios_from": str(from_run) if from_run else "measured on the demo: flows/plan.py DEMO_RATIOS",
        "stages": [asdict(s) for s in stages],
        "total": total,
    }


def _num(x: float | None) -> str:
    if x is None:
        return "?"
    scale, suffix = next(((v, k) for v, k in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")) if x >= v), (1, ""))
    return f"{x / scale:.1f}{suffix}" if suffix else f"{x:.3g}"


def _engine(e: dict) -> str:
    size = "size unknown"
    if e["params_b"] is not None:
        guess = " by name" if e["params_from"] == "name" else ""
        gb = e["weights_gb"]
        size = f"{_num(e['params_b'] * 1e9)}{guess}, " + (f"{gb:.3g} GB" if gb >= 1 else f"{gb * 1e3:.3g} MB")
    where = "" if e["where"] == "in-process" else f" {e['where']}"
    return f"{'+'.join(e['roles'])} -> {e['model']} (TP{e['tp']} {e['backend']}{where}, {size})"


def render(p: dict) -> str:
    """The plan as a compact table with a total line and what its numbers rest on."""
    node, hours = p["node"], p["tok_per_s_per_gpu"] is not None
    rows = [("stage", "roles -> engines (model, TP, backend)", "GPUs at once", "tokens", "GPU-h", "wall h")]
    for s in p["stages"]:
        h = (f"{s['gpu_hours']:.3g}", f"{s['wall_hours']:.3g}") if s["gpu_hours"] is not None else ("-", "-")
        rows.append((s["stage"], "; ".join(_engine(e) for e in s["engines"]), str(s["gpus"]), _num(s["tokens"]), *h))
    t = p["total"]
    h = (f"{t['gpu_hours']:.3g}", f"{t['wall_hours']:.3g}") if hours else ("-", "-")
    rows.append(("total", "", f"max {t['max_gpus_at_once']}", _num(t["tokens"]), *h))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = [" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    ratios = ", ".join(f"{s}.{k} {v:.2f}x" for s, r in p["ratios"].items() for k, v in r.items() if v)
    return "\n".join(
        [
            f"plan {p['recipe']!r}: recipe and roles valid; node {node['gpus']} x {node['gpu_memory_gb']:g} GB, "
            f"{node['ranks']} rank(s), each with {node['gpus_per_rank'] or 'its stage TP in'} GPU(s)",
            f"{p['problems']} problems ({p['problems_from']}); tokens = {p['mean_tokens_fraction']:g} x max_tokens "
            f"per sample; label/pairs per trace token: {ratios or 'none'} ({p['ratios_from']})",
            *table,
            f"hours at {p['tok_per_s_per_gpu']:g} tok/s per GPU (remote engines not counted)"
            if hours
            else "hours: give --tok-per-s-per-gpu",
        ]
    )
