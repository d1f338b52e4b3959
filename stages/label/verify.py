"""Answer verifiers behind a name: does a predicted final answer match the gold one?

Modelled on open-r1's reward registry: each verifier is a pure function `(gold, predicted) -> bool`
registered under a name, so a config can say `verifier: int` for the arithmetic domain and `math`
(math-verify) for competition problems. `verify_answer` is the one entry point the pipeline calls:
it handles missing answers, caps input size, caches repeated pairs and never lets an exception escape
(an error is `False`, counted in `VERIFY_ERRORS`).

math-verify pitfalls handled here:
- bare LaTeX such as `\\sqrt{2}/2`, `\\$29`, `10^{3}` or `- 3` is mis-parsed (or not parsed at all) unless
  it sits inside math delimiters, so bare answers are wrapped in `$...$` first;
- its timeouts use `signal.alarm`: whole seconds, the caller's SIGALRM handler is replaced for the
  duration, and off the main thread it raises `ValueError` even with `raise_on_error=False`. So the
  timeouts are passed only on the main thread; elsewhere there is none, and a short answer such as
  `9^{9^{9}}` or `2^{999999999}` then hangs the worker (holding the GIL, so a watchdog thread cannot
  even report it). Inputs are therefore capped in length, and numeric power towers / huge exponents /
  big factorials are rejected before math-verify sees them (`VERIFY_REJECTED` counts them);
- its `TimeoutException` derives from `BaseException`, so `except Exception` does not catch it.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable

from math_verify import parse, verify
from math_verify.errors import TimeoutException

Verifier = Callable[[str, str | None], bool]

VERIFIERS: dict[str, Verifier] = {}
VERIFY_ERRORS: Counter[str] = Counter()
VERIFY_REJECTED: Counter[str] = Counter()
MAX_ANSWER_CHARS = 1_000
CACHE_SIZE = 65_536
_TIMEOUT_S = threading.local()  # the per-call timeout, read by the `math` verifier


class RejectedAnswer(ValueError):
    """The answer is too long or could make the verifier hang: it is judged `False`, not an error."""


@functools.lru_cache(maxsize=CACHE_SIZE)
def _cached_verify(verifier: str, gold: str, predicted: str, timeout_s: float) -> bool:
    """Pure in its arguments, so repeated pairs are free; exceptions propagate (and are not cached)."""
    _TIMEOUT_S.value = timeout_s
    return bool(VERIFIERS[verifier](_screen(gold), _screen(predicted)))


def register(name: str) -> Callable[[Verifier], Verifier]:
    """Decorator: put `fn` in `VERIFIERS` under `name` (re-registering a name drops cached results)."""

    def decorate(fn: Verifier) -> Verifier:
        VERIFIERS[name] = fn
        _cached_verify.cache_clear()
        return fn

    return decorate


# --- guards -----------------------------------------------------------------------------------------

_TOWER = re.compile(r"\d\^[-+]?\d+\^")  # numeric power tower, after braces/parens are dropped
_BIG_EXPONENT = re.compile(r"\^[-+]?\d{5,}")
_BIG_FACTORIAL = re.compile(r"(?:\d{5,}|\^[-+]?\d+)!")


def explosive(text: str) -> bool:
    """Whether `text` holds numeric arithmetic that sympy would evaluate for minutes: a power tower
    (`9^{9^{9}}`, `(10^4)^{10^4}`), an exponent of 5+ digits, or the factorial of a big number.
    Symbolic towers such as `e^{x^2}` are fine: nothing numeric gets expanded."""
    flat = re.sub(r"\\left|\\right|[\s{}()]", "", text).replace("**", "^")
    return bool(_TOWER.search(flat) or _BIG_EXPONENT.search(flat) or _BIG_FACTORIAL.search(flat))


def _screen(text: str) -> str:
    if len(text) > MAX_ANSWER_CHARS:
        raise RejectedAnswer(f"longer than {MAX_ANSWER_CHARS} chars")
    if explosive(text):
        raise RejectedAnswer("explosive arithmetic")
    return text


# --- built-in verifiers ----------------------------------------------------------------------------


def as_latex(text: str) -> str:
    """Bare answers parse reliably only inside math delimiters; text that already has `$`, `\\(`,
    `\\[` or a `\\boxed` is left alone (an escaped dollar `\\$29` is currency, not a delimiter)."""
    if "$" in text.replace("\\$", "") or any(t in text for t in ("\\boxed", "\\(", "\\[")):
        return text
    return f"${text}$"


def _math_timeout() -> int | None:
    """math-verify's signal-based timeout works only on the main thread and in whole seconds."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return max(1, math.ceil(getattr(_TIMEOUT_S, "value", 5.0)))


def _parse(text: str, timeout: int | None) -> list:
    parsed = parse(as_latex(text), parsing_timeout=timeout, raise_on_error=True)
    if not parsed and as_latex(text) != text:
        parsed = parse(text, parsing_timeout=timeout, raise_on_error=True)
    return parsed


@register("math")
def math_equal(gold: str, predicted: str | None) -> bool:
    """math-verify equivalence: `\\frac{1}{2}` == `0.5`, `5\\text{ cm}` == `5`, `\\$29` == `29`,
    `50\\%` == `50`; the gold is the first argument (verify is not symmetric for sets/relations)."""
    if predicted is None:
        return False
    timeout = _math_timeout()
    gold_parsed, pred_parsed = _parse(gold, timeout), _parse(predicted, timeout)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout, raise_on_error=False))


_BOXED = re.compile(r"^\\boxed\s*\{(.*)\}$", re.DOTALL)


def normalize(text: str) -> str:
    """Unicode-normalised, lower-cased, single-spaced, without surrounding `$`, a wrapping `\\boxed{}`
    or a final period."""
    s = unicodedata.normalize("NFKC", text).strip()
    s = s.strip("$").strip()
    if m := _BOXED.match(s):
        s = m.group(1).strip()
    return " ".join(s.rstrip(".").split()).lower()


@register("exact")
def exact_equal(gold: str, predicted: str | None) -> bool:
    return predicted is not None and normalize(gold) == normalize(predicted)


_INT = re.compile(r"[+-]?\d{1,200}")


def as_int(text: str) -> int | None:
    """`' 1,234. '`, `'$42$'`, `'\\$7'`, `'\\boxed{-3}'` -> the integer; anything else -> None."""
    s = normalize(text.replace("\\$", "")).replace(" ", "")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    return int(s) if _INT.fullmatch(s) else None


@register("int")
def int_equal(gold: str, predicted: str | None) -> bool:
    if predicted is None:
        return False
    g, p = as_int(gold), as_int(predicted)
    return g is not None and g == p


# --- entry point -----------------------------------------------------------------------------------


def verify_answer(
    gold: str | None, predicted: str | None, verifier: str = "math", timeout_s: float = 5.0
) -> bool | None:
    """`None` when there is no gold to compare with, `False` when there is no prediction, else whether
    `predicted` matches `gold` under `VERIFIERS[verifier]`. Never raises: an unknown verifier or an
    error inside one is `False` and counted in `VERIFY_ERRORS[verifier]`."""
    if gold is None:
        return None
    if predicted is None:
        return False
    try:
        return _cached_verify(verifier, gold, predicted, timeout_s)
    except RejectedAnswer:
        VERIFY_REJECTED[verifier] += 1
        return False
    except (Exception, TimeoutException):  # math-verify's TimeoutException is a BaseException
        VERIFY_ERRORS[verifier] += 1
        return False


cache_info = _cached_verify.cache_info
cache_clear = _cached_verify.cache_clear
