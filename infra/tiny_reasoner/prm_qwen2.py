"""The tiny PRM as a `Qwen2ForProcessRewardModel`: the architecture vLLM's pooling runner serves
(Qwen2.5-Math-PRM's), so the engine layer's vLLM pooling backend runs on the embedded default.

The conversion is exact. A Llama decoder is a Qwen2 one with zero q/k/v biases; the token
classifier's one linear layer `z = Wx + b` becomes Qwen2-PRM's two-layer head `W2 relu(W1 x + b1)`
with W1 = [W; -W] (biases [b; -b]) and W2 = [I, -I], since relu(z) - relu(-z) = z.

    .venv/bin/python -m infra.tiny_reasoner.prm_qwen2 --src infra/tiny_reasoner/prm --out DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def convert(src: str | Path, out: str | Path) -> Path:
    src, out = Path(src), Path(out)
    cfg = json.loads((src / "config.json").read_text())
    if cfg["architectures"] != ["LlamaForTokenClassification"] or cfg.get("attention_bias") or cfg.get("mlp_bias"):
        raise ValueError(f"{src}: expected a bias-free LlamaForTokenClassification, got {cfg['architectures']}")
    weights = load_file(src / "model.safetensors")
    h, layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    kv = cfg["num_key_value_heads"] * cfg.get("head_dim", h // cfg["num_attention_heads"])
    out_weights = {k: v for k, v in weights.items() if k.startswith("model.")}
    for i in range(layers):
        for proj, width in (("q_proj", h), ("k_proj", kv), ("v_proj", kv)):
            out_weights[f"model.layers.{i}.self_attn.{proj}.bias"] = torch.zeros(width)
    w, b = weights["score.weight"], weights["score.bias"]
    w1, b1, w2 = torch.zeros(h, h), torch.zeros(h), torch.zeros(2, h)
    w1[0:2], b1[0:2], w1[2:4], b1[2:4] = w, b, -w, -b
    w2[0, 0], w2[0, 2], w2[1, 1], w2[1, 3] = 1.0, -1.0, 1.0, -1.0
    out_weights |= {"score.0.weight": w1, "score.0.bias": b1, "score.2.weight": w2, "score.2.bias": torch.zeros(2)}
    keep = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
    keep += ("max_position_embeddings", "rms_norm_eps", "vocab_size", "tie_word_embeddings", "bos_token_id")
    keep += ("eos_token_id", "pad_token_id", "id2label", "label2id")
    qwen = {k: cfg[k] for k in keep if k in cfg} | {
        "architectures": ["Qwen2ForProcessRewardModel"],
        "model_type": "llama",  # keeps the character tokenizer: "qwen2" would load Qwen2Tokenizer, which drops "\n"
        "hidden_act": "silu",
        "rope_theta": cfg.get("rope_parameters", {}).get("rope_theta", cfg.get("rope_theta", 10000.0)),
        "use_sliding_window": False,
        "torch_dtype": "float32",
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(qwen, indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in out_weights.items()}, out / "model.safetensors")
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default="infra/tiny_reasoner/prm")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    print(convert(args.src, args.out))
