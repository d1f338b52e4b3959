"""The tiny PRM's starting point: the teacher with more layers on top that start as the identity.

A PRM reads a step's score at the token after it, so whether `9 + 4 = 14` is right must reach
that token: the claim's digit has to be compared with the teacher's own guess for it (made one
position earlier, in its last layer) and the verdict carried to the separator. Four layers leave
no depth for that after the guess exists, and the teacher itself as the base did not learn it
(training loss stayed at the label prior). The added layers copy the last one's weights with
their output projections zeroed, so the model starts as exactly the teacher and trains the
comparison on top.

    .venv/bin/python -m infra.tiny_reasoner.prm_base --extra-layers 4 --out DIR
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from stages.engine import resolve_model


def deepen(base: str, extra: int, out: str | Path) -> Path:
    model = AutoModelForCausalLM.from_pretrained(resolve_model(base))
    last = model.model.layers[-1]
    for _ in range(extra):
        layer = copy.deepcopy(last)
        with torch.no_grad():
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.layers.append(layer)
    for i, layer in enumerate(model.model.layers):
        layer.self_attn.layer_idx = i
    model.config.num_hidden_layers = len(model.model.layers)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [model.config.layer_types[0]] * len(model.model.layers)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(resolve_model(base)).save_pretrained(out)
    return Path(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="tiny:teacher")
    ap.add_argument("--extra-layers", type=int, default=4)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    print(deepen(args.base, args.extra_layers, args.out))
