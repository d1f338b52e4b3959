"""The `pairs` stage: step, trace and fidelity preference pairs from labeled traces (`stage.py`)."""
