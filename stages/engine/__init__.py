"""One interface, one backend per file: vLLM in-process and an OpenAI-compatible client; for
process reward models (`runner: pooling`), vLLM's pooling runner and transformers in-process.

Engine start-up is slow (tens of seconds on a CPU, minutes for a large model on GPUs), so a
process keeps one engine per distinct config: stages that run in the same process (local
executor with one worker, a test session) share it instead of starting their own. Two engines
compete for the same GPU memory, so before a stage starts its engines the flow closes those it
does not need (`retain_engines`); worker processes close theirs when their rank ends.
"""

from collections.abc import Iterable

from stages.engine.types import (
    Engine,
    EngineConfig,
    EngineUnavailable,
    Generation,
    Sample,
    SamplingConfig,
    StepRewardEngine,
    resolve_model,
)

_SHARED: dict[str, Engine] = {}


def build_engine(config: EngineConfig) -> Engine | StepRewardEngine:
    """A new engine (a `StepRewardEngine` for `runner: pooling`); most callers want `shared_engine`."""
    if config.backend == "transformers":
        from stages.engine.transformers_prm import TransformersPRM

        return TransformersPRM(config)
    if config.runner == "pooling":
        from stages.engine.vllm_pooling import VLLMPoolingPRM

        return VLLMPoolingPRM(config)
    if config.backend == "vllm":
        from stages.engine.vllm_offline import VLLMEngine

        return VLLMEngine(config)
    from stages.engine.openai_http import OpenAIEngine

    return OpenAIEngine(config)


def engine_key(config: EngineConfig) -> str:
    """What makes two configs one engine: a chat template is text-side only, so an in-process
    model under two templates (an R1-style generator, a plain completer) is one vLLM instance."""
    if config.backend == "vllm" and config.chat_template:
        config = config.model_copy(update={"chat_template": None})
    return config.model_dump_json()


def shared_engine(config: EngineConfig) -> Engine | StepRewardEngine:
    """This process's engine for `config`, started on first use."""
    key = engine_key(config)
    if key not in _SHARED:
        _SHARED[key] = build_engine(EngineConfig.model_validate_json(key))
    engine = _SHARED[key]
    if config.backend == "vllm" and config.chat_template:
        return engine.with_chat_template(config.chat_template)
    return engine


def started_engines() -> list[str]:
    return [EngineConfig.model_validate_json(k).model for k in _SHARED]


def live_engine_configs() -> list[EngineConfig]:
    """The configs of this process's shared engines that are alive now."""
    return [EngineConfig.model_validate_json(k) for k in _SHARED]


def retain_engines(keep: Iterable[EngineConfig]) -> list[str]:
    """Close every shared engine of this process whose config is not in `keep` (before a stage
    starts engines that those would compete with for memory); returns the models closed."""
    wanted = {engine_key(c) for c in keep}
    doomed = [k for k in _SHARED if k not in wanted]
    if doomed and any(getattr(engine, "in_process", False) for engine in _SHARED.values()):
        # shutting one in-process vLLM engine down tears down the process-wide parallel state the
        # others run on ("pipeline model parallel group is not initialized"): close them all, and
        # the kept ones start again on their next use
        doomed = list(_SHARED)
    closed = []
    for key in doomed:
        closed.append(EngineConfig.model_validate_json(key).model)
        _SHARED.pop(key).close()
    return closed


def close_shared_engines() -> None:
    while _SHARED:
        _SHARED.popitem()[1].close()


def in_worker_process() -> bool:
    """True in an executor's worker process (datatrove's pool uses `multiprocess`, a fork of
    `multiprocessing`): engines there must be closed when the rank ends, since the pool ends its
    workers with SIGTERM, which skips every exit hook and would orphan the engine processes."""
    import multiprocessing

    names = [multiprocessing.current_process().name]
    try:
        import multiprocess

        names.append(multiprocess.current_process().name)
    except ImportError:
        pass
    return any(name != "MainProcess" for name in names)


__all__ = [
    "Engine",
    "EngineConfig",
    "EngineUnavailable",
    "Generation",
    "Sample",
    "SamplingConfig",
    "StepRewardEngine",
    "build_engine",
    "close_shared_engines",
    "engine_key",
    "in_worker_process",
    "live_engine_configs",
    "resolve_model",
    "retain_engines",
    "shared_engine",
    "started_engines",
]
