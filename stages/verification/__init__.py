"""Answer verification: does a predicted final answer match the gold one (`verify.py`, by name)."""
