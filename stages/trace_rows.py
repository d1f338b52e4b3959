"""A `traces` row from one sample: the one way a trace is built, whether generated or imported.

The generate stage builds its traces here from the engine's samples, and the import stage from
existing completions (a token-less `Sample`), so every later stage reads the same columns the same
way: the thinking split at its tags, its steps segmented, the answers extracted, each step's
confidence from its own tokens. A problem that cannot be turned into traces is refused here too,
with a reason code (`check_problem`), and a trace's id is a hash of what made it (`trace_id`).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from stages.answers import extract_answer, prompt_opening, split_thinking
from stages.engine import Sample
from stages.segment import SegmentConfig, segment


def trace_id(problem_id: str, sample_index: int, model: str, sampling_json: str) -> str:
    key = "\x00".join([problem_id, str(sample_index), model, sampling_json])
    return hashlib.sha256(key.encode()).hexdigest()[:20]


# Chat-template control tokens (`<|im_end|>`, `<|eos|>`, `<|user|>`): a tokenizer turns them into
# special tokens even inside user text, so a problem holding one could end its own turn and forge
# the model's; no problem needs them.
CONTROL_TOKEN = re.compile(r"<\|[^|<>\s]{1,40}\|>")


def check_problem(row: dict) -> tuple[str, str] | None:
    """(reason, detail) when a problem cannot be generated for, else None."""
    text, answer = row.get("problem"), row.get("answer")
    if text is None or not str(text).strip():
        return "empty_problem", "the problem text is empty"
    if answer is None or not str(answer).strip():
        return "missing_answer", "no gold answer to verify traces against"
    try:
        str(text).encode("utf-8")
    except UnicodeEncodeError:
        return "invalid_utf8", "the problem text holds lone surrogates (undecodable bytes)"
    if "\ufffd" in str(text):
        return "invalid_utf8", "the problem text holds U+FFFD replacement characters (undecodable bytes)"
    if m := CONTROL_TOKEN.search(str(text)):
        return "control_tokens", f"the problem text holds the chat-template control token {m.group(0)!r}"
    return None


def answer_span_confidence(
    text: str, answer_start: int, answer: str | None, offsets: np.ndarray, logprobs: list[float]
) -> float | None:
    """Mean logprob of the tokens that spell the final answer (RLSF's answer-span confidence):
    the last occurrence of `answer` after `answer_start` in the completion."""
    if not answer or not len(offsets) or len(logprobs) != len(offsets):
        return None
    pos = text.rfind(answer, answer_start)
    if pos == -1:
        return None
    lo = max(int(np.searchsorted(offsets, pos, side="right")) - 1, 0)
    hi = int(np.searchsorted(offsets, pos + len(answer), side="left"))
    return float(np.mean(logprobs[lo : max(hi, lo + 1)]))


def build_trace(
    problem: dict,
    index: int,
    sample: Sample,
    model: str,
    sampling_json: str,
    prompt: str,
    segmentation: SegmentConfig,
    store_logprobs: bool = False,
) -> dict:
    """One `traces` row: split, answers, steps (cut by `segmentation`) with confidence from the step's own
    tokens; the per-token arrays only with `store_logprobs`."""
    parts = split_thinking(sample.text, sample.reasoning, prompt_opened=bool(prompt_opening(prompt)))
    offsets = np.asarray(sample.offsets, dtype=np.int64)
    think_end = parts.thinking_start + len(parts.thinking)
    if sample.reasoning is None and len(offsets):
        t0, t1 = np.searchsorted(offsets, [parts.thinking_start, think_end])
        thinking_tokens, answer_tokens = int(t1 - t0), int(len(offsets) - t1)
        steps = segment(parts.thinking, parts.thinking_start, offsets, sample.logprobs, sample.entropies, segmentation)
    else:  # a server's separate reasoning field: no token alignment for the thinking
        thinking_tokens, answer_tokens = 0, len(sample.logprobs)
        steps = segment(parts.thinking, 0, [], [], [], segmentation)
    keep = store_logprobs
    final = extract_answer(parts.answer) if parts.closed else None
    answer_start = parts.thinking_start + len(parts.thinking) if sample.reasoning is None else 0
    return {
        "trace_id": trace_id(problem["problem_id"], index, model, sampling_json),
        "problem_id": problem["problem_id"],
        "sample_index": index,
        "model": model,
        "sampling": sampling_json,
        "problem": problem["problem"],
        "gold_answer": problem["answer"],
        "prompt": prompt,
        "completion": sample.text,
        "thinking": parts.thinking,
        "thinking_start": parts.thinking_start,
        "answer_text": parts.answer,
        "finish_reason": sample.finish_reason,
        "thinking_tokens": thinking_tokens,
        "answer_tokens": answer_tokens,
        "final_answer": final,
        "answer_confidence": answer_span_confidence(sample.text, answer_start, final, offsets, sample.logprobs),
        "thinking_answer": extract_answer(parts.thinking),
        "steps": steps,
        "token_logprobs": list(sample.logprobs) if keep else [],
        "token_entropies": list(sample.entropies) if keep else [],
        "token_offsets": list(sample.offsets) if keep else [],
    }
