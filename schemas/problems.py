"""`problems`: what the generator is asked to solve, with its gold answer."""

import hashlib

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


def problem_id_for(source: str, text: str) -> str:
    """Stable id of a problem: the same text from the same source always gets the same id."""
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:16]
