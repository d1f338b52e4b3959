"""The evaluation's `depth` stage: each trace's deep-thinking ratio under the model that wrote it.

The ratio is the logit lens's (`stages/logit_lens.py`). The model is the recipe's `generator` role
(the one being evaluated), loaded with transformers because vLLM does not expose per-layer hidden
states: on a GPU when there is one, else on the CPU (fine for the tiny reasoner; a 7B model wants a
GPU). The trace's own prompt and completion are
re-tokenized by the model's tokenizer.
"""

from __future__ import annotations

import math

from pydantic import Field

from schemas import EVAL_DEPTH, LABELED_TRACES
from stages.base import ModelStageConfig, ShardStage
from stages.logit_lens import DepthConfig, deep_thinking_ratio, load_model


class DeepThinkingConfig(ModelStageConfig):
    PURPOSES = ("generator",)
    enabled: bool = True  # off: no model is loaded, every ratio is null
    depth: DepthConfig = Field(default_factory=DepthConfig)
    device: str = "auto"  # auto: cuda when available, else cpu
    dtype: str = "auto"  # auto: bfloat16 on cuda, float32 on cpu
    chunk_size: int = 256

    def purposes_used(self) -> tuple[str, ...]:
        return self.PURPOSES if self.enabled else ()

    def engine_roles(self) -> dict[str, str]:
        return {}  # the generator's weights are loaded here, with transformers


def depth_row(loaded, trace: dict, cfg: DepthConfig) -> dict:
    """A trace's `eval_depth` row under `loaded` (model, tokenizer); a null ratio without one."""
    ratio, tokens = math.nan, trace["thinking_tokens"] + trace["answer_tokens"]
    if loaded is not None:
        model, tok = loaded
        prompt = tok(trace["prompt"], add_special_tokens=False).input_ids
        completion = tok(trace["completion"], add_special_tokens=False).input_ids
        ratio, tokens = deep_thinking_ratio(model, prompt, completion, cfg), len(completion)
    return {
        **{k: trace[k] for k in ("trace_id", "problem_id", "model")},
        "deep_thinking_ratio": None if math.isnan(ratio) else ratio,
        "completion_tokens": tokens,
    }


class DeepThinking(ShardStage):
    name = "depth"
    in_features = LABELED_TRACES
    out_features = EVAL_DEPTH

    def setup(self, rank: int) -> None:
        self.loaded = None
        if self.cfg.enabled:
            self.loaded = load_model(self.models["generator"].model, self.cfg.device, self.cfg.dtype)

    def teardown(self) -> None:
        self.loaded = None

    def process_chunk(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        return [depth_row(self.loaded, r, self.cfg.depth) for r in rows], []
