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
  timeouts are passed only on the main thread; off it, math-verify runs in a child process that is
  killed past its deadline (`isolated.py`), since a short answer such as `\\binom{10^{9}}{5
  \\cdot 10^{8}}` or `100!!` otherwise holds the thread forever (with the GIL, so a watchdog thread
  cannot even report it). A call is thus bounded by 3 x `timeout_s` (two parses, one comparison)
  wherever it runs: by the signals on the main thread, by the kill elsewhere;
- a signal cannot interrupt one long C-level operation (a huge integer power or factorial), and a
  timeout still costs its seconds: inputs are capped in length, and numeric power towers, huge
  exponents, factorials and binomials of big numbers, and brackets nested past `MAX_NESTING` are
  rejected before math-verify sees them (`VERIFY_REJECTED` counts them);
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

from math_verify.errors import TimeoutException

from stages.verification import isolated
from stages.verification.equivalence import math_equal_here

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
_BIG_FACTORIAL = re.compile(r"(?:\d{5,}|\^[-+]?\d+|\d!)!")  # of a 5+ digit number, a power, a factorial
_CLOSING = {")": "(", "}": "{", "]": "["}
_BINOMIAL = re.compile(r"\\[dt]?binom|\\choose(?![A-Za-z])")
_ARG = r"\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}"  # a brace group holding at most one level of braces
_BINOM_ARGS = re.compile(rf"\s*{_ARG}\s*{_ARG}")
_NUMERIC_COMMANDS = re.compile(r"\\(?:cdot|times|div|[dt]?frac|left|right)(?![A-Za-z])")
_SMALL_INT = re.compile(r"\s*\d{1,4}\s*")
MAX_NESTING = 12  # bracket depth; math-verify's LaTeX parser slows down exponentially (16 nested \frac: 3 s)
MAX_GROUPS = 32  # factorial / binomial operands inspected per answer


def _nesting(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "({[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in _CLOSING:
            depth = max(0, depth - 1)
    return deepest


def _group_before(text: str, end: int) -> str | None:
    """The bracketed group whose closing bracket is at `end` (without the brackets), else None."""
    depth = 0
    for i in range(end, -1, -1):
        if text[i] in _CLOSING:
            depth += 1
        elif text[i] in "({[":
            depth -= 1
            if depth == 0:
                return text[i + 1 : end]
    return None


def _big_number(group: str | None) -> bool:
    """A letter-free (numeric) expression other than a plain number of at most 4 digits: `10^9`,
    `9999 \\cdot 9999`, `5!`. How big it is, sympy knows only once it has computed it."""
    if group is None or _SMALL_INT.fullmatch(group):
        return False
    return not re.search(r"[A-Za-z]", _NUMERIC_COMMANDS.sub("", group))


def _factorial_of_expression(text: str) -> bool:
    """`(9999 \\cdot 9999)!`, `{10^{9}}!`: the factorial of a numeric expression."""
    closings = re.finditer(r"[)}\]]\s*!", text)
    return any(_big_number(_group_before(text, m.start())) for _, m in zip(range(MAX_GROUPS), closings))


def _big_binomial(text: str) -> bool:
    """`\\binom{10^{9}}{5 \\cdot 10^{8}}`, `{10^9 \\choose 3}`: a binomial coefficient of numbers
    that are not plain literals of at most 4 digits."""
    for _, m in zip(range(MAX_GROUPS), _BINOMIAL.finditer(text)):
        if m.group(0) == "\\choose":  # {a \choose b}: the two sides inside the enclosing braces
            sides = [text[: m.start()].rsplit("{", 1)[-1], text[m.end() :].split("}", 1)[0]]
        else:
            args = _BINOM_ARGS.match(text, m.end())
            sides = list(args.groups()) if args else []
        if any(_big_number(side) for side in sides):
            return True
    return False


def explosive(text: str) -> bool:
    """Whether `text` holds numeric arithmetic that sympy would evaluate for minutes: a power tower
    (`9^{9^{9}}`, `(10^4)^{10^4}`), an exponent of 5+ digits, the factorial of a big number, of a
    numeric expression or of a factorial (`100!!`), a binomial of big numbers, or brackets nested
    deeper than `MAX_NESTING`. Symbolic towers such as `e^{x^2}` and `(n+1)!` are fine: nothing
    numeric gets expanded."""
    flat = re.sub(r"\\left|\\right|[\s{}()]", "", text).replace("**", "^")
    return bool(
        _TOWER.search(flat)
        or _BIG_EXPONENT.search(flat)
        or _BIG_FACTORIAL.search(flat)
        or ("!" in text and _factorial_of_expression(text))
        or (("binom" in text or "choose" in text) and _big_binomial(text))
        or _nesting(text) > MAX_NESTING
    )


def _screen(text: str) -> str:
    if len(text) > MAX_ANSWER_CHARS:
        raise RejectedAnswer(f"longer than {MAX_ANSWER_CHARS} chars")
    if explosive(text):
        raise RejectedAnswer("explosive arithmetic")
    return text


# --- built-in verifiers ----------------------------------------------------------------------------


@register("math")
def math_equal(gold: str, predicted: str | None) -> bool:
    """math-verify equivalence: `\\frac{1}{2}` == `0.5`, `5\\text{ cm}` == `5`, `\\$29` == `29`,
    `50\\%` == `50`; the gold is the first argument (verify is not symmetric for sets/relations).
    Off the main thread (no signals there) it runs in a child process killed past its deadline."""
    if predicted is None:
        return False
    seconds = getattr(_TIMEOUT_S, "value", 5.0)
    if threading.current_thread() is not threading.main_thread():
        return isolated.math_equal(gold, predicted, seconds)
    return math_equal_here(gold, predicted, max(1, math.ceil(seconds)))


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
