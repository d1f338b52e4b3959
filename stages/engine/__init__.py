"""One interface, one backend per file: vLLM in-process and an OpenAI-compatible client; for
process reward models (`runner: pooling`), vLLM's pooling runner and transformers in-process.

`build_engine` makes a new engine; a process's engines and model servers are started, shared
and stopped by its pool (`stages.engine.pool.POOL`).
"""

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


def build_engine(config: EngineConfig) -> Engine | StepRewardEngine:
    """A new engine (a `StepRewardEngine` for `runner: pooling`); most callers want `POOL.open`."""
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


__all__ = [
    "Engine",
    "EngineConfig",
    "EngineUnavailable",
    "Generation",
    "Sample",
    "SamplingConfig",
    "StepRewardEngine",
    "build_engine",
    "engine_key",
    "resolve_model",
]
