"""The `problems` stage: bundled arithmetic or a Hub dataset, as `problems` shards (`stage.py`)."""
