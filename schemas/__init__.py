"""The one source of truth for every record type Thoughtmill reads or writes.

Each record type is a `datasets.Features`; its pyarrow schema is derived from it, so the two
can never drift. `validate` checks a table at a stage boundary and casts it to the declared
types (no `large_string` surprises downstream).
"""

from schemas.evaluation import EVAL_DEPTH, EVAL_SCORES, EVAL_SUMMARY
from schemas.labels import LABELED_TRACES
from schemas.outputs import CONFIGS, DPO, PRM, SFT
from schemas.pairs import FRONTIER, PAIRS
from schemas.problems import PROBLEMS
from schemas.rejects import REJECTS
from schemas.traces import STEP, TRACES
from schemas.validate import SchemaError, arrow_schema, empty_table, validate

REGISTRY = {
    "problems": PROBLEMS,
    "traces": TRACES,
    "labeled_traces": LABELED_TRACES,
    "pairs": PAIRS,
    "frontier": FRONTIER,
    "eval_scores": EVAL_SCORES,
    "eval_depth": EVAL_DEPTH,
    "eval_summary": EVAL_SUMMARY,
    "rejects": REJECTS,
    **{f"config_{name}": features for name, features in CONFIGS.items()},
}

__all__ = [
    "CONFIGS",
    "DPO",
    "EVAL_DEPTH",
    "EVAL_SCORES",
    "EVAL_SUMMARY",
    "FRONTIER",
    "LABELED_TRACES",
    "PAIRS",
    "PRM",
    "SFT",
    "PROBLEMS",
    "REJECTS",
    "REGISTRY",
    "STEP",
    "TRACES",
    "SchemaError",
    "arrow_schema",
    "empty_table",
    "validate",
]
