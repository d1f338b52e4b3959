"""The `frontier` stage: the student's pass rate and IFD, what it can learn from (`stage.py`)."""
