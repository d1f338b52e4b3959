"""math-verify's equivalence of two answers, in the calling thread.

Bare LaTeX such as `\\sqrt{2}/2` or `- 3` parses reliably only inside math delimiters, so bare
answers are wrapped in `$...$` first. math-verify bounds its work with `signal.alarm`, so this
runs only on a main thread: `verify.py` calls it there, and `isolated.py`'s child process (on its
own main thread) for callers off it.
"""

from __future__ import annotations

from math_verify import parse, verify


def as_latex(text: str) -> str:
    """Bare answers parse reliably only inside math delimiters; text that already has `$`, `\\(`,
    `\\[` or a `\\boxed` is left alone (an escaped dollar `\\$29` is currency, not a delimiter)."""
    if "$" in text.replace("\\$", "") or any(t in text for t in ("\\boxed", "\\(", "\\[")):
        return text
    return f"${text}$"


def _parse(text: str, timeout: int) -> list:
    parsed = parse(as_latex(text), parsing_timeout=timeout, raise_on_error=True)
    if not parsed and as_latex(text) != text:
        parsed = parse(text, parsing_timeout=timeout, raise_on_error=True)
    return parsed


def math_equal_here(gold: str, predicted: str, timeout: int) -> bool:
    """math-verify in this thread, which must be a main thread: its timeouts are `signal.alarm`s
    of `timeout` whole seconds for each parse and for the comparison."""
    gold_parsed, pred_parsed = _parse(gold, timeout), _parse(predicted, timeout)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout, raise_on_error=False))
