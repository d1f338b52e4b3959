"""Deep-thinking ratio (arXiv 2602.13517): how much of a trace the model decides only in its last layers.

For each generated token, the logit lens reads a next-token distribution off every layer's output
(the model's final norm and unembedding applied to it). The token settles at the first layer whose
distribution is within Jensen-Shannon divergence `threshold` (natural log, at most ln 2) of the
final layer's; the paper's "running minimum" of the divergence crosses the threshold at that same
layer. A token is deep when it settles at layer ceil(depth_fraction * L) or later, and a trace's
ratio is its share of deep tokens. Computed with transformers (hidden states are not exposed by
vLLM): the tiny reasoner on a CPU, a real model on a GPU; `load_model` loads one for the
evaluation's depth stage and for think@n pruning (`stages/prune/think.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pydantic import BaseModel, ConfigDict

from stages.engine import resolve_model


class DepthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = 0.5  # JSD g (nats) within which a layer agrees with the final one
    depth_fraction: float = 0.85  # rho: a token is deep when it settles at ceil(rho * L) or later
    # positions read through the unembedding at once: [L, positions, vocab] floats must fit
    positions_per_pass: int = 128


def _decoder_layers(model) -> list[torch.nn.Module]:
    """The decoder blocks of a Hugging Face causal LM (Llama, Qwen2, Mistral, ... as `model.model.layers`)."""
    base = getattr(model, "model", None)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: no `model.layers` to read the logit lens from")
    return list(layers)


@torch.no_grad()
def layer_outputs(model, input_ids: torch.Tensor) -> torch.Tensor:
    """[L, T, H] every decoder layer's output for one sequence (`input_ids` [T])."""
    outputs: list[torch.Tensor] = []
    hooks = [
        layer.register_forward_hook(lambda _m, _i, out: outputs.append(out[0] if isinstance(out, tuple) else out))
        for layer in _decoder_layers(model)
    ]
    try:
        model(input_ids=input_ids[None].to(model.device), use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat(outputs)


def jensen_shannon(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """JSD in nats between distributions given as log-probabilities over the last dimension."""
    logm = torch.logsumexp(torch.stack([logp, logq]), dim=0) - math.log(2)
    kl = lambda a: (a.exp() * (a - logm)).sum(-1)  # noqa: E731
    return 0.5 * kl(logp) + 0.5 * kl(logq)


def settling_layers(logprobs: torch.Tensor, threshold: float) -> torch.Tensor:
    """[T] the 1-based first layer whose distribution is within `threshold` JSD of the last
    layer's, for every position of `logprobs` [L, T, V]."""
    close = jensen_shannon(logprobs, logprobs[-1:].expand_as(logprobs)) <= threshold  # [L, T]
    return close.int().argmax(dim=0) + 1  # the last layer always qualifies (JSD 0)


def deep_thinking_ratio(model, prompt_ids: Sequence[int], completion_ids: Sequence[int], cfg: DepthConfig) -> float:
    """Share of the completion's tokens that settle at layer ceil(depth_fraction * L) or later.
    The distribution that predicts completion token i is read at the position before it."""
    if not completion_ids:
        return float("nan")
    ids = torch.tensor(list(prompt_ids) + list(completion_ids), dtype=torch.long)
    hidden = layer_outputs(model, ids)[:, len(prompt_ids) - 1 : len(ids) - 1]
    norm, head = model.model.norm, model.get_output_embeddings()
    settle = torch.cat(
        [
            settling_layers(torch.log_softmax(head(norm(block)).float(), dim=-1), cfg.threshold)
            for block in hidden.split(cfg.positions_per_pass, dim=1)
        ]
    )
    deep_from = math.ceil(cfg.depth_fraction * hidden.shape[0])
    return float((settle >= deep_from).float().mean())


def load_model(name: str, device: str = "auto", dtype: str = "auto"):
    """(model, tokenizer) with transformers, in eval mode on `device`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    torch_dtype = (torch.bfloat16 if device.startswith("cuda") else torch.float32) if dtype == "auto" else dtype
    path = resolve_model(name)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device).eval()
    return model, AutoTokenizer.from_pretrained(path)
