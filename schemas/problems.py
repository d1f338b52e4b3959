"""`problems`: what the generator is asked to solve, with its gold answer."""

from datasets import Features, Value

PROBLEMS = Features(
    {
        "problem_id": Value("string"),  # stable hash of source + text
        "source": Value("string"),  # "arithmetic", or a Hub dataset name
        "problem": Value("string"),
        "answer": Value("string"),  # gold final answer, as text
        "split": Value("string"),
        "meta": Value("string"),  # JSON object: source-specific extras (level, subject, expression)
    }
)
