"""Fine-tune the teacher on the judge task in the `pairs` line format (see `judge_data`).

    python -m infra.tiny_reasoner.finetune_judge --init infra/tiny_reasoner/teacher --steps 850

Batches: judge tasks (30%, 70% of them with a slip), judge drills (50%: dense verdicts), and
generation traces (20%, so the teacher keeps its generation skill). The loss weights verdict
tokens (`ok`/`wrong`) 10x: they are a few characters among hundreds, and the rest of each line is
copying and arithmetic the model already knows. Seeded, fp32 unless the CPU has fast bf16.
Prints teacher-forced verdict accuracy on held-out tasks as it goes (the diagnostic that shows
whether the comparison is being learned at all), then greedy judge and sampled answer accuracy.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import torch
from transformers import LlamaForCausalLM

from infra.tiny_reasoner.evaluate import judge_tasks
from infra.tiny_reasoner.judge_data import judge_target
from infra.tiny_reasoner.tokenizer import build_tokenizer
from infra.tiny_reasoner.train import autocast, encode_batch, examples, judge_accuracy, sampled_accuracy, save
from stages.arithmetic.truth import step_truth
from stages.label.judge_format import judge_prompt


def verdict_ids(tok) -> tuple[int, int]:
    return tok("o", add_special_tokens=False).input_ids[0], tok("w", add_special_tokens=False).input_ids[0]


# a judge line: the quoted claim (group 1) and the claim's digits in the pairs (groups 2, 3)
_PAIRS_LINE = re.compile(r"\[\d+\] (\d+ [+\-*] \d+ = \d+); \d+ [+\-*] \d+ = \d+; (\d)\d (\d)\d (?:ok|wrong)")


def copy_weights(tok, y: torch.Tensor, quote: float, pair: float) -> torch.Tensor:
    """Per-token weights for the copying a judge line needs: the step's claim quoted from the
    prompt (`quote`x) and the claim's digits written into the pairs (`pair`x). Greedy judging
    failed there: the model re-solved instead of quoting, and wrote its own value's digits twice."""
    w = torch.ones(y.shape)
    for r in range(y.shape[0]):
        cols = [c for c in range(y.shape[1]) if int(y[r, c]) != -100]
        pieces = tok.convert_ids_to_tokens([int(y[r, c]) for c in cols])
        starts = [0]
        for piece in pieces:
            starts.append(starts[-1] + len(piece))
        at = {start: col for start, col in zip(starts, cols)}
        for line in _PAIRS_LINE.finditer("".join(pieces)):
            for group, factor in ((1, quote), (2, pair), (3, pair)):
                for char in range(*line.span(group)):
                    if char in at:
                        w[r, at[char]] = factor
    return w


def weighted_loss(model, x, y, mask, ids: tuple[int, int], weight: float, copy: torch.Tensor) -> torch.Tensor:
    """Token cross-entropy with verdict tokens weighted `weight`x and copied characters by `copy`,
    normalised by the target count."""
    logits = model(input_ids=x, attention_mask=mask).logits[:, :-1]
    target = y[:, 1:]
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="none"
    ).view(target.shape)
    w = copy[:, 1:] * (target != -100).float() + (weight - 1) * ((target == ids[0]) | (target == ids[1])).float()
    return (ce * w).sum() / (target != -100).sum()


@torch.no_grad()
def forced_verdicts(model, tok, tasks) -> dict:
    """Teacher-forced accuracy of the verdict token on gold `pairs` lines, for ok and wrong steps."""
    model.eval()
    ok_id, wrong_id = verdict_ids(tok)
    space = tok(" ", add_special_tokens=False).input_ids[0]
    hits = {"ok": [0, 0], "wrong": [0, 0]}
    for k in range(0, len(tasks), 25):
        pairs = [
            (judge_prompt(p.text, steps, "compact"), judge_target(steps, step_truth(p.tree, steps), "pairs"))
            for p, steps, _ in tasks[k : k + 25]
        ]
        x, y, mask = encode_batch(tok, pairs)
        logits = model(input_ids=x, attention_mask=mask).logits
        for r in range(x.shape[0]):
            for t in range(1, x.shape[1]):
                gold = int(y[r, t])
                if gold in (ok_id, wrong_id) and int(x[r, t - 1]) == space:
                    said_ok = logits[r, t - 1, ok_id] > logits[r, t - 1, wrong_id]
                    key = "ok" if gold == ok_id else "wrong"
                    hits[key][0] += bool(said_ok) == (key == "ok")
                    hits[key][1] += 1
    model.train()
    return {f"forced_{k}": round(a / max(1, n), 3) for k, (a, n) in hits.items()}


def run_steps(model, batches, steps: int, lr: float, warmup: int, loss_of, check) -> list[dict]:
    """The fine-tunes' optimisation: AdamW, `warmup` steps up, then cosine down to a fifth of `lr`;
    `check()` at step 0, every 100 steps and at the end, each row printed as it comes."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    history = [{"step": 0, **check()}]
    print(json.dumps(history[-1]), flush=True)
    start = time.time()
    for step in range(1, steps + 1):
        batch = next(batches)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, step / warmup) * (0.2 + 0.4 * (1 + math.cos(math.pi * step / steps)))
        with autocast():
            loss = loss_of(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == steps:
            row = {"step": step, "minutes": round((time.time() - start) / 60, 2), "loss": round(loss.item(), 4)}
            history.append(row | check())
            print(json.dumps(history[-1]), flush=True)
    return history


def finetune(
    init: Path,
    out: Path,
    steps: int,
    seed: int,
    batch: int,
    lr: float,
    verdict_weight: float,
    copy: tuple[float, float],
) -> dict:
    torch.manual_seed(seed)
    tok = build_tokenizer()
    model = LlamaForCausalLM.from_pretrained(init)
    data = examples(seed, judge_share=0.3, batch_size=batch, drill_share=0.5, judge_format="pairs", p_slip=0.7)
    ids, held_out = verdict_ids(tok), judge_tasks(100)

    def loss_of(pairs):
        x, y, mask = encode_batch(tok, pairs)
        return weighted_loss(model, x, y, mask, ids, verdict_weight, copy_weights(tok, y, *copy))

    history = run_steps(model, data, steps, lr, 50, loss_of, lambda: forced_verdicts(model, tok, held_out))
    final = {"sampled_accuracy": sampled_accuracy(model, tok), **judge_accuracy(model, tok, n=200)}
    print(json.dumps(final), flush=True)
    base = json.loads((init / "training.json").read_text()) if (init / "training.json").exists() else None
    info = {"role": "teacher", "init": str(init), "judge_finetune_steps": steps, "seed": seed, "batch": batch}
    info |= {"lr": lr, "verdict_weight": verdict_weight, "quote_weight": copy[0], "pair_weight": copy[1]}
    info |= {"judge_format": "pairs", **final}
    info |= {"history": history, "base": base}
    save(model, tok, out, info)
    return info


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "teacher")
    ap.add_argument("--steps", type=int, default=850)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--verdict-weight", type=float, default=10.0)
    ap.add_argument("--quote-weight", type=float, default=1.0, help="weight of the claim quoted in a judge line")
    ap.add_argument("--pair-weight", type=float, default=1.0, help="weight of the claim's digits in the pairs")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    copy = (args.quote_weight, args.pair_weight)
    finetune(args.init, args.out, args.steps, args.seed, args.batch, args.lr, args.verdict_weight, copy)
