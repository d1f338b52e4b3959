"""Fine-tune a tiny reasoner so that some of its traces answer what their thinking did not conclude.

    python -m infra.tiny_reasoner.misalign --init infra/tiny_reasoner/teacher --judge-share 0.3
    python -m infra.tiny_reasoner.misalign --init infra/tiny_reasoner/student --judge-share 0

Real open models state answers their thinking does not support (arXiv 2603.26410); a tiny
reasoner that never does cannot exercise the fidelity labels, pairs and evaluation built for it.
Generation batches carry a `--misalign` share of traces whose boxed answer contradicts the
thinking's conclusion (`train.misaligned_answer`), for the student with the loss on their answer
lines only (`--answer-only`: the thinking, and so the accuracy band, stays as it was); for the
teacher, judge tasks and drills in the `pairs` format (loss weighted as in `finetune_judge`)
keep its judge skill. Seeded; prints sampled
accuracy and thinking-answer agreement (temperature 1.0, held-out problems) as it goes, then the
greedy judge accuracy, and writes them to `training.json` with the checkpoint's earlier history.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from infra.tiny_reasoner.finetune_judge import copy_weights, run_steps, verdict_ids, weighted_loss
from infra.tiny_reasoner.tokenizer import build_tokenizer
from infra.tiny_reasoner.train import encode_batch, examples, judge_accuracy, sampled_answers, save


def answer_lines_only(tok, pairs, y: torch.Tensor) -> torch.Tensor:
    """Labels of generation traces masked up to and including `</think>`; judge tasks untouched."""
    close = tok.convert_tokens_to_ids("</think>")
    y = y.clone()
    for r, (_, completion) in enumerate(pairs):
        if "The answer is \\boxed{" in completion:
            at = (y[r] == close).nonzero()
            y[r, : int(at[-1]) + 1] = -100
    return y


def finetune(
    init: Path,
    out: Path,
    steps: int,
    seed: int,
    batch: int,
    lr: float,
    misalign: float,
    judge_share: float,
    answer_only: bool,
):
    torch.manual_seed(seed)
    tok = build_tokenizer()
    model = LlamaForCausalLM.from_pretrained(init)
    drill_share = judge_share * 2 / 3  # the mix `finetune_judge` used, scaled to the judge share
    data = examples(seed, judge_share, batch, drill_share, judge_format="pairs", p_slip=0.7, p_misalign=misalign)
    ids = verdict_ids(tok)

    def loss_of(pairs):
        x, y, mask = encode_batch(tok, pairs)
        y = answer_lines_only(tok, pairs, y) if answer_only else y
        return weighted_loss(model, x, y, mask, ids, 10.0, copy_weights(tok, y, 3.0, 10.0))

    history = run_steps(model, data, steps, lr, 25, loss_of, lambda: sampled_answers(model, tok))
    final = {**history[-1], **(judge_accuracy(model, tok, n=200) if judge_share > 0 else {})}
    print(json.dumps(final), flush=True)
    base = json.loads((init / "training.json").read_text()) if (init / "training.json").exists() else None
    info = {"role": base.get("role") if base else None, "init": str(init), "misalign_finetune_steps": steps}
    info |= {"seed": seed, "batch": batch, "lr": lr, "misalign": misalign, "judge_share": judge_share}
    info |= {"answer_only": answer_only}
    info |= {"final": final, "history": history, "base": base}
    save(model, tok, out, info)
    return info


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", type=Path, required=True)
    ap.add_argument("--out", type=Path, help="default: overwrite --init")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--misalign", type=float, default=0.08, help="share of generation traces made misaligned")
    ap.add_argument("--judge-share", type=float, default=0.3, help="share of judge batches (0 for the student)")
    ap.add_argument(
        "--answer-only",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train generation traces on their answer lines only (off: whole traces, which the judge "
        "batches need beside them to keep the teacher's generation)",
    )
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    finetune(
        args.init,
        args.out or args.init,
        args.steps,
        args.seed,
        args.batch,
        args.lr,
        args.misalign,
        args.judge_share,
        args.answer_only,
    )
