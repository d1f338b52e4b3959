"""A process reward model in-process with transformers, for architectures vLLM's pooling runner
does not serve (a Llama token classifier such as the tiny PRM TRL's PRMTrainer writes).

One padded forward pass per batch of traces; a step's reward is the softmax of the classifier's
"correct" class (label 1, as TRL trains it) at the step's scoring token (`step_layout`).
"""

from __future__ import annotations

from collections.abc import Sequence

from stages.engine.step_layout import step_layout, within
from stages.engine.types import EngineConfig, resolve_model


class TransformersPRM:
    in_process = False  # not vLLM: closing it leaves other engines' parallel state alone

    def __init__(self, config: EngineConfig, batch_size: int = 16) -> None:
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        path = resolve_model(config.model)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float32 if self.device == "cpu" or config.dtype == "auto" else getattr(torch, config.dtype)
        self.model = AutoModelForTokenClassification.from_pretrained(path, dtype=dtype).to(self.device).eval()
        if self.model.config.num_labels != 2:
            raise ValueError(
                f"{config.model}: a PRM token classifier has 2 labels, this one {self.model.config.num_labels}"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.name = config.model
        self.max_model_len = config.max_model_len or getattr(self.model.config, "max_position_embeddings", None)
        self.batch_size = batch_size

    def step_rewards(
        self, problems: Sequence[str], steps: Sequence[Sequence[str]], separator: str
    ) -> list[list[float | None]]:
        import torch

        laid = [step_layout(self.tokenizer, p, s, separator) for p, s in zip(problems, steps)]
        out: list[list[float | None]] = []
        for start in range(0, len(laid), self.batch_size):
            batch = laid[start : start + self.batch_size]
            ids = [i[: self.max_model_len] if self.max_model_len else i for i, _ in batch]
            width = max(len(i) for i in ids)
            pad = self.tokenizer.pad_token_id or 0
            x = torch.tensor([i + [pad] * (width - len(i)) for i in ids], device=self.device)
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids], device=self.device)
            with torch.no_grad():
                probs = self.model(input_ids=x, attention_mask=mask).logits.float().softmax(-1)[..., 1]
            for row, (_, positions) in enumerate(batch):
                scored = within(positions, self.max_model_len)
                out.append([float(probs[row, p]) for p in positions[:scored]] + [None] * (len(positions) - scored))
        return out

    def close(self) -> None:
        self.model = None
