"""Train a model on a published Thoughtmill dataset with TRL (the pinned 1.13), by path or Hub name.

`sft` turns each conversation into prompt and completion (the loss covers the assistant's turn
only), `dpo` trains on the pair kinds asked for, `prm` trains a token classifier on step labels.
The checkpoint is written with its tokenizer and chat template, so the engine layer loads it like
any model (a path usable as a role's `model`), and `thoughtmill-train.json` beside it records the
config, the data's fingerprint and the run's figures.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.pairs import pair_kinds
from stages.engine import resolve_model

RECORD = "thoughtmill-train.json"


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["sft", "dpo", "prm"]
    model: str = "tiny:student"  # the base: `tiny:NAME`, a checkpoint path or a Hub id
    dataset: str  # a published dataset folder or a Hub repo id
    revision: str | None = None  # Hub revision (a tag such as v3 pins the data)
    kinds: list[str] = []  # dpo: pair kinds to train on (empty: all)
    max_steps: int = -1  # -1: `epochs` passes over the data
    epochs: float = 1.0
    batch_size: int = 8
    learning_rate: float = 1e-4
    beta: float = 0.1  # dpo: strength of the pull towards the reference model
    # dpo: TRL's loss types, combined with `loss_weights` (["sigmoid", "sft"]: DPO plus the chosen
    # side's likelihood, as RPO does, against DPO lowering both sides' likelihood)
    loss_type: list[str] = ["sigmoid"]
    loss_weights: list[float] | None = None
    max_length: int = 512
    # prm: what follows each step, where its label sits (the PRM labeler reads scores there): a
    # blank line, as the segmenter splits paragraphs, where a tiny model's next-paragraph guess
    # ("Wait, ..." after a slip) already says whether the step was right; TRL's default is "\n"
    step_separator: str = "\n\n"
    seed: int = 0


def sft_example(row: dict) -> dict:
    """A published `sft` row as a conversational prompt and completion: reasoning kept in a
    separate field goes back inline as `<think>` so the model learns to write it."""
    *prompt, answer = row["messages"]
    content = answer["content"]
    if answer.get("reasoning_content"):
        content = f"<think>\n{answer['reasoning_content']}\n</think>\n\n{content}"
    strip = lambda m: {"role": m["role"], "content": m["content"]}  # noqa: E731
    return {"prompt": [strip(m) for m in prompt], "completion": [{"role": "assistant", "content": content}]}


def load_rows(cfg: TrainConfig):
    """The training rows of `cfg.method`'s config, in the columns its trainer takes."""
    from datasets import load_dataset

    ds = load_dataset(cfg.dataset, cfg.method, split="train", revision=cfg.revision)
    if cfg.method == "sft":
        return ds.map(sft_example, remove_columns=ds.column_names)
    if cfg.method == "dpo":
        if cfg.kinds:  # a pair several builders made is one row: any of its kinds selects it
            ds = ds.filter(lambda r: not set(pair_kinds(r)).isdisjoint(cfg.kinds))
        return ds.select_columns(["prompt", "chosen", "rejected"])
    return ds.select_columns(["prompt", "completions", "labels"])


def fingerprint(ds) -> str:
    """A hash of the training rows themselves (what was trained on, wherever it came from)."""
    h = hashlib.sha256()
    for row in ds:
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _trainer(cfg: TrainConfig, rows, out: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

    base = resolve_model(cfg.model)
    tok = AutoTokenizer.from_pretrained(base)
    common = dict(
        output_dir=str(out / "trainer"),
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=[],
        logging_steps=10,
        save_strategy="no",
        use_cpu=not torch.cuda.is_available(),
    )
    if cfg.method == "sft":
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**common, max_length=cfg.max_length, completion_only_loss=True)
        model = AutoModelForCausalLM.from_pretrained(base)
        return SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=tok), tok
    if cfg.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        losses = dict(loss_type=cfg.loss_type, loss_weights=cfg.loss_weights)
        args = DPOConfig(**common, max_length=cfg.max_length, beta=cfg.beta, **losses)
        model = AutoModelForCausalLM.from_pretrained(base)
        return DPOTrainer(model=model, args=args, train_dataset=rows, processing_class=tok), tok
    from trl.experimental.prm import PRMConfig, PRMTrainer

    args = PRMConfig(**common, max_length=cfg.max_length, step_separator=cfg.step_separator)
    model = AutoModelForTokenClassification.from_pretrained(base, num_labels=2)
    return PRMTrainer(model=model, args=args, train_dataset=rows, processing_class=tok), tok


def train(cfg: TrainConfig, out: str | Path) -> dict:
    """Train and write the checkpoint to `out` (its tokenizer and `thoughtmill-train.json` beside it)."""
    out = Path(out)
    rows = load_rows(cfg)
    if len(rows) == 0:
        kinds = f" of kinds {cfg.kinds}" if cfg.kinds else ""
        raise ValueError(f"{cfg.dataset}: no {cfg.method} rows to train on{kinds}")
    start = time.time()
    trainer, tok = _trainer(cfg, rows, out)
    result = trainer.train()
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    record = {
        "config": cfg.model_dump(mode="json"),
        "base": resolve_model(cfg.model),
        "rows": len(rows),
        "data_fingerprint": fingerprint(rows),
        "steps": result.global_step,
        "training_loss": result.training_loss,
        "seconds": round(time.time() - start, 1),
    }
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return {"path": str(out), **record}
