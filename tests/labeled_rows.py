"""A labeled trace row with every field the pairs and fidelity code read, for tests that build
pairs from hand-written traces: a clean, right, agreed trace unless the caller says otherwise."""

from __future__ import annotations


def labeled_trace(tid: str, **fields) -> dict:
    return {
        "trace_id": tid,
        "problem_id": "p",
        "problem": "What is 16 - 7 + 3?",
        "completion": f"<think>{tid}</think> \\boxed{{12}}",
        "answer_confidence": -0.1,
        "finish_reason": "stop",
        "final_correct": True,
        "thinking_answer_agrees": True,
        "consensus": "agree",
        "first_error": -1,
        "first_error_symbolic": -1,
        "self_corrected": False,
        "rationalized": False,
        "steps": [],
    } | fields
