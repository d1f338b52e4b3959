"""Where a stage's engines go: their sizes from local files, each rank's GPUs, and whether they fit.

Engines at once: the flow closes the engines a stage does not use before it starts its own
(`flows/curate.py`), and roles with equal settings share one engine, so a stage holds one engine
per distinct config among its engine roles. An in-process engine is started by every executor
rank; a role with `serve:` is one server on this node, shared by the ranks; an `openai` role with
`base_url` runs elsewhere and takes no local GPU. Sizes come from checkpoint headers and the
Hugging Face cache, never from weights or the network (`thoughtmill plan`, `flows/plan.py`).
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from stages.engine.types import EngineConfig, resolve_model

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


def stage_engines(recipe, section, tokens: dict[str, float] | None) -> list[EnginePlan]:
    """The engines `section`'s stage holds at once (one per distinct config among its engine
    roles), with the tokens each generates (`tokens`: purpose -> tokens; None: unknown)."""
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


def rank_gpus(ex, engines: list[EnginePlan], ranks: int, per_rank: int, node: int) -> list[list[int]]:
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


def place(stage: str, engines: list[EnginePlan], slices: list[list[int]], node: int, gb: float) -> int:
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
