"""The `generate` stage: problems in, thinking traces out, each step with its confidence (`stage.py`)."""
