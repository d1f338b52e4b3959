"""Real downstream clients: TRL's DPOTrainer and PRMTrainer train on the published configs.

TRL 1.13 is pinned by the test extra: `PRMTrainer` lives in `trl.experimental.prm` up to 1.13 and
is gone from 1.14 on.
"""

from __future__ import annotations

import math

import pytest
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

from stages.engine import resolve_model

pytestmark = pytest.mark.vllm
STUDENT = resolve_model("tiny:student")


def test_dpo_trainer_runs_two_steps_on_the_dpo_config(demo_run, tmp_path):
    from trl import DPOConfig, DPOTrainer

    ds = load_dataset(demo_run[1]["stages"]["publish"]["path"], "dpo", split="train").select_columns(
        ["prompt", "chosen", "rejected"]
    )
    args = DPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        report_to=[],
        logging_steps=1,
        use_cpu=True,
        max_length=512,
        save_strategy="no",
        seed=0,
    )
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(STUDENT),
        args=args,
        train_dataset=ds,
        processing_class=AutoTokenizer.from_pretrained(STUDENT),
    )
    result = trainer.train()
    assert result.global_step == 2 and math.isfinite(result.training_loss)


def test_prm_trainer_runs_two_steps_on_the_prm_config(demo_run, tmp_path):
    from trl.experimental.prm import PRMConfig, PRMTrainer

    ds = load_dataset(demo_run[1]["stages"]["publish"]["path"], "prm", split="train").select_columns(
        ["prompt", "completions", "labels"]
    )
    model = AutoModelForTokenClassification.from_pretrained(STUDENT, num_labels=2)
    args = PRMConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        report_to=[],
        logging_steps=1,
        use_cpu=True,
        max_length=512,
        save_strategy="no",
        seed=0,
    )
    trainer = PRMTrainer(
        model=model, args=args, train_dataset=ds, processing_class=AutoTokenizer.from_pretrained(STUDENT)
    )
    result = trainer.train()
    assert result.global_step == 2 and math.isfinite(result.training_loss)
