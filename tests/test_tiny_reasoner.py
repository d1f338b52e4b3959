"""The shipped teacher, measured as the pipeline uses it: through vLLM (the session's engine)."""

from __future__ import annotations

import pytest

from infra.tiny_reasoner.evaluate import judge_accuracy

pytestmark = pytest.mark.vllm


def test_teacher_judge_beats_always_answering_minus_one(teacher_engine):
    """The judge's verdicts carry information: greedy earliest-wrong-step exact match on held-out
    tasks (half with one slip) above the trivial answer -1, and every verdict parseable."""
    result = judge_accuracy(teacher_engine, n=120)
    assert result.unparseable == 0.0, result
    assert result.accuracy >= result.always_minus_one + 0.05, result
