"""One mapping from an `EngineConfig` to vLLM's engine arguments, for the in-process engine and
for a served one (`vllm serve` flags), so a role behaves the same whichever way it runs."""

from __future__ import annotations

import psutil

from stages.engine.types import EngineConfig, resolve_model


def vllm_engine_args(config: EngineConfig, cpu: bool, in_process: bool) -> dict:
    """Keyword arguments of vLLM's `LLM` / `EngineArgs` for `config` on this platform."""
    utilization = config.gpu_memory_utilization or (0.2 if cpu else 0.9)
    kv_bytes = config.kv_cache_memory_bytes
    if kv_bytes is None and cpu and in_process:
        kv_bytes = int(0.8 * utilization * psutil.virtual_memory().total)
    args = dict(
        model=resolve_model(config.model),
        dtype=config.dtype,
        seed=config.seed,
        gpu_memory_utilization=utilization,
        enable_prefix_caching=config.enable_prefix_caching,
        tensor_parallel_size=config.tensor_parallel_size,
        enforce_eager=config.enforce_eager,
    )
    if kv_bytes:
        args["kv_cache_memory_bytes"] = kv_bytes
    if config.max_model_len:
        args["max_model_len"] = config.max_model_len
    chunked = config.enable_chunked_prefill
    if chunked is None and cpu:
        chunked = False  # vLLM-CPU's seeded sampling crashes on a chunked prefill
    if chunked is not None:
        args["enable_chunked_prefill"] = chunked
    if config.block_size:
        args["block_size"] = config.block_size
    if config.max_num_seqs:
        args["max_num_seqs"] = config.max_num_seqs
    return args


def as_flags(args: dict) -> list[str]:
    """`vllm serve` flags for engine arguments: `--key value`, booleans as `--key` / `--no-key`."""
    flags: list[str] = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return flags
