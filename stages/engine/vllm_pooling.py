"""A process reward model on vLLM's pooling runner, for the architectures it serves
(`Qwen2ForProcessRewardModel`, Qwen2.5-Math-PRM's; the tiny PRM converted by
`infra/tiny_reasoner/prm_qwen2.py`). Every token's class probabilities come back (`ALL` pooling)
and the step scores are read where `step_layout` put them, the same tokens the transformers
backend reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from stages.engine.step_layout import step_layout, within
from stages.engine.types import EngineConfig
from stages.engine.vllm_offline import start_llm, stop_llm


class VLLMPoolingPRM:
    def __init__(self, config: EngineConfig) -> None:
        from vllm.config import PoolerConfig

        pooler = PoolerConfig(tok_pooling_type="ALL")
        self.llm, self.in_process = start_llm(config, runner="pooling", pooler_config=pooler)
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
        stop_llm(self.llm)
        self.llm = None
