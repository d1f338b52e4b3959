"""`thoughtmill plan`: what a recipe will need, worked out before anything starts.

It validates the recipe (its sections and roles, as a run would), then per stage of the pipeline
lists the engines the stage holds at once, the GPUs they take, the tokens it will generate and the
hours that costs at a given throughput, and fails early when engines that must coexist cannot fit
on the node. It reads only local files (checkpoint headers, the Hugging Face cache, a finished
run's `run.json`): it starts no engine, imports no vLLM and touches no network.

Engines at once: the flow closes the engines a stage does not use before it starts its own
(`flows/curate.py`), and roles with equal settings share one engine, so a stage holds one engine
per distinct config among its engine roles. An in-process engine is started by every executor
rank; a role with `serve:` is one server on this node, shared by the ranks; an `openai` role with
`base_url` runs elsewhere and takes no local GPU.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import get_args

from flows.pipeline import DEFAULT, load_pipeline
from stages.engine.types import EngineConfig, resolve_model

# Tokens the label and pairs stages generate per generated trace token, by source, from the demo's
# run.json (`make run`): label with its cost levers on (adaptive k, rollouts stopped at the
# thinking's end); pairs' next-step sampling from a run that sampled it (the demo now draws step
# pairs from the label rollouts, and a recipe that does so plans no pairs tokens). Recipe-
# independent defaults only: `--from-run` takes them from a finished run of the recipe planned.
DEMO_RATIOS: dict[str, dict[str, float]] = {
    "label": {"mc": 31026 / 41948, "judge": 41351 / 41948, "symbolic": 0.0, "resolve": 4069 / 41948},
    "pairs": {"next_step": 257637 / 41948},
}
DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "fp8": 1}
ST_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
NAME_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)([BM])(?![A-Za-z0-9])", re.IGNORECASE)


class PlanError(ValueError):
    """The recipe cannot run as planned (one line: the stage, the roles and the numbers)."""


@dataclass
class EnginePlan:
    roles: list[str]
    model: str
    backend: str
    tp: int
    where: str  # "in-process" (one per rank), "served" (one on this node) or "remote"
    utilization: float
    params_b: float | None  # billions
    params_from: str  # checkpoint | hf-cache | name | unknown
    weights_gb: float | None
    kv_bytes: int | None = None  # kv_cache_memory_bytes: the KV cache sized in bytes, not as a share
    devices: list[int] | None = None  # a served role's pinned GPUs
    share: float = 0.0  # of each of its GPUs' memory
    tokens: float | None = 0.0


@dataclass
class StagePlan:
    stage: str
    engines: list[EnginePlan] = field(default_factory=list)
    gpus: int = 0
    tokens: float | None = 0.0
    tokens_at_max: float | None = 0.0
    gpu_hours: float | None = None
    wall_hours: float | None = None


def _checkpoint(folder: Path) -> tuple[float, int] | None:
    """(parameters, bytes per parameter as stored) from safetensors headers: never reads weights."""
    count = size = 0
    try:
        for f in sorted(folder.glob("*.safetensors")):
            with f.open("rb") as fh:
                header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
            for n, dtype in ((math.prod(t["shape"]), t["dtype"]) for k, t in header.items() if k != "__metadata__"):
                count, size = count + n, size + n * ST_BYTES.get(dtype, 2)
    except (OSError, ValueError, KeyError, struct.error):  # a partial download, a dangling cache link
        return None
    return (count, round(size / count)) if count else None


def _hf_snapshot(model: str) -> Path | None:
    hub = os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache/huggingface")) / "hub"
    repo = Path(hub) / f"models--{model.replace('/', '--')}"
    ref = repo / "refs" / "main"
    if ref.is_file():
        return repo / "snapshots" / ref.read_text().strip()
    snaps = sorted((repo / "snapshots").glob("*"))
    return snaps[-1] if snaps else None


def model_size(config: EngineConfig) -> tuple[float | None, str, float | None]:
    """(billions of parameters, where that came from, GB of weights at the engine's dtype)."""
    try:
        local = Path(resolve_model(config.model))
    except FileNotFoundError:
        local = Path(config.model)
    found, source = (_checkpoint(local), "checkpoint") if local.is_dir() else (None, "")
    if found is None and (snap := _hf_snapshot(config.model)):
        found, source = _checkpoint(snap), "hf-cache"
    if found is not None:
        params, stored = found
    elif m := NAME_SIZE.search(Path(config.model).name):
        params, stored, source = float(m[1]) * (1e9 if m[2].upper() == "B" else 1e6), 2, "name"
    else:
        return None, "unknown", None
    # vLLM's dtype "auto" loads float32 checkpoints in half precision on GPUs, others as stored
    per = DTYPE_BYTES.get(config.dtype, min(stored, 2) if config.dtype == "auto" else 2)
    return params / 1e9, source, params * per / 1e9


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
        from stages.arithmetic.space import require_available
        from stages.arithmetic.trees import Split

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
        from stages.label.registry import LABELERS

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


def _engines(recipe, section, tokens: dict[str, float] | None) -> list[EnginePlan]:
    by_config: dict[str, EnginePlan] = {}
    for purpose, role in section.engine_roles().items():
        config = recipe.models[role]
        key = config.model_dump_json()
        if key not in by_config:
            serve = getattr(config, "serve", None)
            where = "served" if serve else "remote" if config.backend == "openai" else "in-process"
            params, source, weights = model_size(config)
            util = config.gpu_memory_utilization or 0.9
            by_config[key] = EnginePlan(
                [], config.model, config.backend, config.tensor_parallel_size, where, util, params, source, weights,
                config.kv_cache_memory_bytes, getattr(serve, "devices", None),
            )  # fmt: skip
        e = by_config[key]
        if role not in e.roles:
            e.roles.append(role)
        add = None if tokens is None else tokens.get(purpose, 0.0)
        e.tokens = None if add is None or e.tokens is None else e.tokens + add
    return list(by_config.values())


def _slices(ex, engines: list[EnginePlan], ranks: int, per_rank: int, node: int) -> list[list[int]]:
    """Each rank's GPUs, as the executor gives them: locally a slice of `executor.devices` (default
    every GPU) of `gpus_per_worker` (default the stage's largest in-process TP) per worker."""
    if ex.kind != "local":
        return [[g for g in range(r * per_rank, (r + 1) * per_rank) if g < node] for r in range(ranks)]
    tp = max((e.tp for e in engines if e.where == "in-process"), default=0)
    per = ex.gpus_per_worker if ex.gpus_per_worker is not None else tp
    devices = [int(d) for d in ex.devices] if ex.devices is not None else list(range(node))
    if ranks * per > len(devices):
        raise PlanError(f"executor: {ranks} worker(s) x {per} GPU(s) need {ranks * per} devices, "
                        f"but the node gives {len(devices)}: {devices}")  # fmt: skip
    return [devices[r * per : (r + 1) * per] for r in range(ranks)]


def _place(stage: str, engines: list[EnginePlan], slices: list[list[int]], node: int, gb: float) -> int:
    """Put each local engine on GPUs with room for its share; returns the GPUs used, or raises.
    vLLM takes `gpu_memory_utilization` of each of its GPUs at start (weights inside it, the rest KV
    cache), so two 0.9 engines cannot share a GPU; `kv_cache_memory_bytes` sizes it instead."""
    free = [1.0] * node
    local = [e for e in engines if e.where != "remote"]
    for e in local:
        weights = (e.weights_gb or 0.0) / e.tp
        e.share = (weights + e.kv_bytes / 1e9) / gb if e.kv_bytes else e.utilization
        if not e.kv_bytes and weights >= e.share * gb:
            raise PlanError(
                f"stage {stage!r}: role(s) {', '.join(e.roles)} ({e.model}, ~{e.weights_gb:.0f} GB weights, TP{e.tp}) "
                f"need {weights:.0f} GB per GPU but get {e.utilization:.2f} x {gb:g} GB, leaving no KV cache; "
                f"raise tensor_parallel_size or gpu_memory_utilization"
            )
    ranks = len(slices)
    jobs = [(e, list(range(node))) for e in local if e.where == "served"]  # one server on the node
    jobs += [(e, s) for s in slices for e in local if e.where == "in-process"]  # one engine per rank
    for e, gpus in sorted(jobs, key=lambda j: (j[0].devices is None, -j[0].tp)):
        # vLLM in a worker starts on the first GPUs it sees; a server on its devices or the freest
        pick = e.devices or (gpus[: e.tp] if e.where == "in-process" else sorted(gpus, key=lambda g: -free[g])[: e.tp])
        if len(pick) < e.tp or any(g >= node or free[g] < e.share - 1e-9 for g in pick):
            uses = " and ".join(f"{'+'.join(x.roles)} ({x.model}, TP{x.tp}) takes {x.share:.2f}" for x in local)
            scope = f"{node} GPU(s) of the node" if e.where == "served" else f"{len(gpus)} GPU(s) per rank"
            raise PlanError(
                f"stage {stage!r}: engines that run at once do not fit on {scope} ({node} x {gb:g} GB, "
                f"{ranks} rank(s)): {uses} of each of its GPUs; lower gpu_memory_utilization, add GPUs, "
                f"or give the roles equal settings (one shared engine)"
            )
        for g in pick:
            free[g] -= e.share
    return sum(f < 1.0 for f in free)


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
        sp = StagePlan(s.name, _engines(recipe, section, tokens))
        if not sp.engines:
            continue
        slices = _slices(ex, sp.engines, ranks, per_rank, node)
        sp.gpus = _place(s.name, sp.engines, slices, node, gpu_memory_gb)
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
