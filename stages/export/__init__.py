"""The `export` stage: labeled traces, pairs and frontier decisions as the configs TRL loads (`stage.py`)."""
