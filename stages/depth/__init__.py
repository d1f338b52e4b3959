"""The evaluation's `depth` stage: each trace's deep-thinking ratio (`stage.py`)."""
