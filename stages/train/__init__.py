"""Fine-tuning on a published corpus with TRL: SFT on `sft`, DPO on `dpo`, PRM on `prm` (`stage.py`)."""
