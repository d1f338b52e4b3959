"""The `label` stage: registered step labelers, their consensus and fidelity metrics (`stage.py`)."""
