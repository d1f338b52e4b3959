"""A process reward model on vLLM's pooling runner, for the architectures it serves
(`Qwen2ForProcessRewardModel`, Qwen2.5-Math-PRM's; the tiny PRM converted by
`infra/tiny_reasoner/prm_qwen2.py`). Every token's class probabilities come back (`ALL` pooling)
and the step scores are read where `step_layout` put them, the same tokens the transformers
backend reads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from stages.engine.step_layout import step_layout, within
from stages.engine.types import EngineConfig
from stages.engine.vllm_args import vllm_engine_args


class VLLMPoolingPRM:
    def __init__(self, config: EngineConfig) -> None:
        from vllm import LLM
        from vllm.config import PoolerConfig
        from vllm.platforms import current_platform

        cpu = current_platform.is_cpu()
        in_process = cpu if config.in_process is None else config.in_process
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"
        self.in_process = in_process
        kwargs = vllm_engine_args(config, cpu, in_process)
        kwargs.pop("enable_chunked_prefill", None)  # a pooling model prefills each prompt whole
        self.llm = LLM(**kwargs, runner="pooling", pooler_config=PoolerConfig(tok_pooling_type="ALL"))
        self.tokenizer = self.llm.get_tokenizer()
        self.name = config.model
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len

    def step_rewards(
        self, problems: Sequence[str], steps: Sequence[Sequence[str]], separator: str
    ) -> list[list[float | None]]:
        from vllm.inputs import TokensPrompt

        laid = [step_layout(self.tokenizer, p, s, separator) for p, s in zip(problems, steps)]
        prompts = [TokensPrompt(prompt_token_ids=ids[: self.max_model_len]) for ids, _ in laid]
        outputs = self.llm.encode(prompts, pooling_task="token_classify", use_tqdm=False)
        out: list[list[float | None]] = []
        for (_, positions), res in zip(laid, outputs):
            probs = res.outputs.data  # [tokens, 2]: class probabilities per token
            scored = within(positions, self.max_model_len)
            out.append([float(probs[p, 1]) for p in positions[:scored]] + [None] * (len(positions) - scored))
        return out

    def close(self) -> None:
        import gc

        self.llm = None
        gc.collect()
