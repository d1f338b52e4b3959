"""Train the tiny reasoner (teacher or student) from scratch on generated arithmetic traces.

Seeded and CPU-only. Training stops when the model's sampled final-answer accuracy on held-out
`eval` problems (temperature 1.0) reaches the role's target, or when the time budget runs out,
so the shipped checkpoints are imperfect on purpose: step labels must carry information.

    python -m infra.tiny_reasoner.train          # writes infra/tiny_reasoner/{student,teacher}/
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from infra.tiny_reasoner.evaluate import judge_tasks
from infra.tiny_reasoner.judge_data import drill_example, judge_example
from infra.tiny_reasoner.tokenizer import build_tokenizer
from stages.answers import extract_answer, split_thinking
from stages.arithmetic.problems import generate, render_completion, solution_steps, trace_paragraphs
from stages.label.judge_format import judge_prompt, parse_verdict

# One run trains the teacher; the student is the same run's snapshot taken when its sampled
# accuracy first reaches the student target (a weaker model of the same family, as a smaller or
# less-trained student is in a real run). Training stops at the teacher target or the budget.
MODEL = dict(hidden=192, layers=4, heads=3, inter=512)
JUDGE_SHARE = 0.25
TARGETS = {"student": 0.30, "teacher": 0.66}
MINUTES = 28
HERE = Path(__file__).parent


def _cpu_has_bf16() -> bool:
    """bf16 autocast is ~2x faster on CPUs with AVX512-BF16/AMX and ~14x slower without them
    (emulated; measured on an AMD EPYC without avx512_bf16), so use it only where it helps."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=_cpu_has_bf16())


def misaligned_answer(problem, rng: random.Random) -> int:
    """An answer line that contradicts the thinking's conclusion the way real models' do: an
    off-by-one, the digits swapped, or an intermediate value stated as final."""
    concluded = problem.answer
    kind = rng.choice(("off_by_one", "digit_swap", "intermediate"))
    if kind == "digit_swap" and concluded >= 10 and concluded % 10 != concluded // 10:
        return int(str(concluded)[::-1])
    earlier = [c for *_, c in solution_steps(problem.tree)[:-1] if c != concluded]
    if kind == "intermediate" and earlier:
        return rng.choice(earlier)
    return concluded + rng.choice((-1, 1))


def examples(
    seed: int,
    judge_share: float,
    batch_size: int,
    drill_share: float = 0.0,
    judge_format: str = "recompute",
    p_slip: float = 0.5,
    p_misalign: float = 0.0,
):
    """Batches of one task each (judge examples are longer, mixing them wastes padding): judge tasks
    (`judge_share`), judge drills (`drill_share`), else generation traces, a `p_misalign` share of
    them answering something other than what their thinking concluded."""
    rng = random.Random(seed)
    problems = list(generate("train", 20_000, seed=seed))
    while True:
        u = rng.random()
        judge, drill = u < judge_share, judge_share <= u < judge_share + drill_share
        batch = []
        while len(batch) < batch_size:
            p = problems[rng.randrange(len(problems))]
            if drill:
                prompt, completion = drill_example(problems, rng)
            elif judge:
                prompt, completion = judge_example(p, rng, judge_format, p_slip)
            else:
                paragraphs = trace_paragraphs(p, rng, p_check=0.1, p_fix=0.05)
                answer = misaligned_answer(p, rng) if rng.random() < p_misalign else p.answer
                prompt, completion = p.text, render_completion(paragraphs, str(answer))
            if len(prompt) + len(completion) < 480:  # char-level: one token per character
                batch.append((prompt, completion))
        yield batch


def encode_batch(tok, pairs):
    ids, labels = [], []
    for prompt, completion in pairs:
        p = tok(f"<|user|>{prompt}<|assistant|>", add_special_tokens=False).input_ids
        c = tok(completion + "<|eos|>", add_special_tokens=False).input_ids
        ids.append(p + c)
        labels.append([-100] * len(p) + c)
    width = max(map(len, ids))
    pad = tok.pad_token_id
    x = torch.tensor([s + [pad] * (width - len(s)) for s in ids])
    y = torch.tensor([s + [-100] * (width - len(s)) for s in labels])
    return x, y, (x != pad).long()


def sampled_accuracy(model, tok, n: int = 160, seed: int = 1) -> float:
    return sampled_answers(model, tok, n, seed)["sampled_accuracy"]


@torch.no_grad()
def sampled_answers(model, tok, n: int = 160, seed: int = 1) -> dict:
    """Final-answer accuracy and thinking-answer agreement at temperature 1.0 on held-out `eval`
    problems (the pipeline's definitions of both answers)."""
    model.eval()
    torch.manual_seed(seed)
    problems = list(generate("eval", n, seed=0))
    prompts = [f"<|user|>{p.text}<|assistant|>" for p in problems]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with autocast():
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=320,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    texts = tok.batch_decode(out[:, enc.input_ids.shape[1] :], skip_special_tokens=True)
    model.train()
    hits = agree = 0
    for p, t in zip(problems, texts):
        split = split_thinking(t)
        final = extract_answer(split.answer)
        hits += final == str(p.answer)
        agree += final is not None and final == extract_answer(split.thinking)
    return {"sampled_accuracy": hits / n, "sampled_agreement": agree / n}


@torch.no_grad()
def judge_accuracy(model, tok, n: int = 100) -> dict:
    """Greedy earliest-wrong-step exact match on held-out judge tasks, next to always -1."""
    model.eval()
    tasks = judge_tasks(n)
    prompts = [f"<|user|>{judge_prompt(p.text, steps, 'compact')}<|assistant|>" for p, steps, _ in tasks]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with autocast():
        out = model.generate(
            **enc, do_sample=False, max_new_tokens=300, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
        )
    texts = tok.batch_decode(out[:, enc.input_ids.shape[1] :], skip_special_tokens=True)
    model.train()
    hits = sum(parse_verdict(t, len(steps)).index == truth for t, (_, steps, truth) in zip(texts, tasks))
    return {"judge_accuracy": hits / n, "always_minus_one": sum(t == -1 for *_, t in tasks) / n}


def save(model, tok, out: Path, info: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.do_sample = True
    model.generation_config.temperature = 1.0
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")


def train(
    out: Path,
    seed: int,
    minutes: float,
    batch: int,
    lr: float,
    judge_share: float = JUDGE_SHARE,
    max_steps: int | None = None,
) -> dict:
    """From scratch: save the student and teacher snapshots at their targets (the teacher is then
    fine-tuned as a judge by `finetune_judge`)."""
    cfg = {**MODEL, "judge_share": judge_share}
    torch.manual_seed(seed)
    tok = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg["hidden"],
        intermediate_size=cfg["inter"],
        num_hidden_layers=cfg["layers"],
        num_attention_heads=cfg["heads"],
        num_key_value_heads=cfg["heads"],
        head_dim=64,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    budget = 60 * minutes
    run_info = {
        "seed": seed,
        "params": n_params,
        "batch": batch,
        "lr": lr,
        "judge_share": judge_share,
    }
    saved: set[str] = set()
    data = examples(seed, cfg["judge_share"], batch)
    start, step, history = time.time(), 0, []
    est_steps = 4000
    while time.time() - start < budget and (max_steps is None or step < max_steps):
        x, y, mask = encode_batch(tok, next(data))
        warm = min(1.0, (step + 1) / 100)
        for g in opt.param_groups:
            g["lr"] = lr * warm * max(0.1, 0.5 * (1 + math.cos(math.pi * min(step / est_steps, 1.0))))
        with autocast():
            loss = model(input_ids=x, attention_mask=mask, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if step % 50 == 0:
            print(
                json.dumps(
                    {"step": step, "minutes": round((time.time() - start) / 60, 2), "loss": round(loss.item(), 4)}
                ),
                flush=True,
            )
        if step % 200 == 0:
            acc = sampled_accuracy(model, tok)
            history.append(
                {
                    "step": step,
                    "minutes": round((time.time() - start) / 60, 2),
                    "loss": round(loss.item(), 4),
                    "sampled_accuracy": acc,
                    **(judge_accuracy(model, tok) if judge_share > 0 else {}),
                }
            )
            print(json.dumps(history[-1]), flush=True)
            for role, target in TARGETS.items():
                if acc >= target and role not in saved:
                    saved.add(role)
                    save(
                        model,
                        tok,
                        out / role,
                        {**run_info, "role": role, "steps": step, "sampled_accuracy_at_save": acc, "history": history},
                    )
            if "teacher" in saved:
                break
    for role in TARGETS:  # budget spent before a target: save what there is
        if role not in saved:
            save(
                model,
                tok,
                out / role,
                {**run_info, "role": role, "steps": step, "target_missed": True, "history": history},
            )
    return {"params": n_params, "steps": step, "minutes": round((time.time() - start) / 60, 2), "saved": sorted(saved)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=MINUTES)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--judge-share", type=float, default=JUDGE_SHARE, help="share of batches on the judge task")
    ap.add_argument("--max-steps", type=int, help="stop after this many steps (a budget independent of machine load)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = train(
        args.out,
        args.seed,
        args.minutes,
        args.batch,
        args.lr,
        args.judge_share,
        max_steps=args.max_steps,
    )
    print(json.dumps(result))
