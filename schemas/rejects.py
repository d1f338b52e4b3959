"""`rejects`: rows a stage refused, with a reason code, so nothing is dropped silently."""

from datasets import Features, Value

REJECTS = Features(
    {
        "row_id": Value("string"),  # id of the refused row (problem_id, trace_id, ...) or "" if none
        "stage": Value("string"),
        "reason": Value("string"),  # short code: empty_problem, missing_answer, prompt_too_long, too_many_steps, ...
        "detail": Value("string"),  # human-readable explanation
        "payload": Value("string"),  # the offending row as JSON, truncated to a few KB
    }
)
