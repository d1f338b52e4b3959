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
    }
)
