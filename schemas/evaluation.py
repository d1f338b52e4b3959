"""`eval_scores`: one row per evaluated sample, what the evaluation's summary is computed from."""

from datasets import Features, Value

EVAL_SCORES = Features(
    {
        "trace_id": Value("string"),
        "problem_id": Value("string"),
        "model": Value("string"),
        "sample_index": Value("int32"),
        "final_answer": Value("string"),  # null: no answer could be extracted
        "final_correct": Value("bool"),
        "thinking_correct": Value("bool"),  # the answer concluded in the thinking verifies
        "thinking_answer_agrees": Value("bool"),  # null if either answer is missing
        "first_error": Value("int32"),  # earliest wrong step (-1: none; null: unknown)
        "first_error_source": Value("string"),  # "exact truth" | "consensus labels"
        "steps": Value("int32"),
        "mean_step_confidence": Value("float32"),  # mean over steps of exp(mean token logprob)
        "answer_confidence": Value("float32"),  # exp of the answer span's mean token logprob
        "thinking_tokens": Value("int32"),
        "deep_thinking_ratio": Value("float32"),  # null: not computed (depth stage off)
    }
)

# `eval_depth`: one row per trace, the deep-thinking ratio the `depth` stage read off its model.
EVAL_DEPTH = Features(
    {
        "trace_id": Value("string"),
        "problem_id": Value("string"),
        "model": Value("string"),
        "deep_thinking_ratio": Value("float32"),  # null: no completion tokens
        "completion_tokens": Value("int32"),
    }
)

# `eval_summary`: one row per model and figure of its summary, each with its bootstrap interval
# (long, so the set of figures can grow without a schema change).
EVAL_SUMMARY = Features(
    {
        "model": Value("string"),
        "section": Value("string"),  # answers | thinking | first_errors | calibration | depth
        "metric": Value("string"),  # e.g. pass@1, agreement, table.knows_but_says_otherwise
        "estimate": Value("float64"),  # null where the figure is undefined
        "low": Value("float64"),
        "high": Value("float64"),
    }
)
