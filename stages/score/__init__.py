"""The evaluation's `score` stage: per-sample scores and the model's summary with intervals (`stage.py`)."""
