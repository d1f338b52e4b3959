"""Fine-tuning on a published corpus with TRL: SFT on `sft`, DPO on `dpo`, PRM on `prm`."""

from stages.train.trainer import TrainConfig, train

__all__ = ["TrainConfig", "train"]
