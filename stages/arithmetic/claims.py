"""Symbolic step checker: find the arithmetic claims a reasoning step makes and check them exactly.

A trusted, free step label: `81 * 4 = 324` is checked without a judge model. Only expressions made of
numbers, `+ - * / ^` and parentheses count as claims (anything touching a variable is left to the
judge); they are checked by `exact.py` (exact fractions, every size capped, never `eval`),
and finding them is bounded too (step length, claims per step, linear regex passes), so hostile
text gives "unknown" at once instead of a hang. Verdicts err towards "unknown": a claim only makes a
step "wrong" when it was cleanly delimited from the surrounding prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from stages.arithmetic.exact import MAX_SIDE_CHARS, Claim, check_claim, has_operation, parse

MAX_STEP_CHARS = 100_000  # longer steps are not scanned at all
MAX_CLAIMS = 100  # per step; the rest of a step is not scanned
FRAC_PASSES = 8  # nested \frac levels unfolded


@dataclass(frozen=True)
class StepCheck:
    """`claims` counts the claims that could be evaluated; `false_claims` lists the false ones."""

    verdict: Literal["correct", "wrong", "unknown"]
    claims: int
    false_claims: list[str]


# --- normalising LaTeX and unicode to plain arithmetic ----------------------------------------------

_REPLACEMENTS = [
    (re.compile(r"\\(?:left|right|[bB]igg?[lr]?)\s*([()])"), r"\1"),
    (re.compile(r"\\[$()\[\]]|\$"), " "),  # math delimiters and escaped dollars (currency)
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"(?<=\d)\\,(?=\d{3}(?!\d))"), ""),  # 1\,000
    (re.compile(r"\\[,;:! ]"), " "),
    (re.compile(r"\\(?:times|cdot|ast)(?![A-Za-z])|[×·⋅∙∗]"), " * "),
    (re.compile(r"\\div(?![A-Za-z])|[÷∕]"), " / "),
    (re.compile(r"−"), "-"),
    (re.compile(r"\*\*"), "^"),
    (re.compile(r"=="), "="),
]
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_SHORT_FRAC = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])")


def normalize(text: str) -> str:
    """Plain arithmetic: `\\frac{a}{b}` -> `((a)/(b))`, `\\times`/`·` -> `*`, `1,234` -> `1234`, braces ->
    parentheses, math delimiters -> spaces. Each rule is one linear regex pass."""
    for pattern, repl in _REPLACEMENTS:
        text = pattern.sub(repl, text)
    text = _SHORT_FRAC.sub(r"((\1)/(\2))", text)
    for _ in range(FRAC_PASSES):
        text, n = _FRAC.subn(r"((\1)/(\2))", text)
        if not n:
            break
    text = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)
    return text.replace("{", "(").replace("}", ")")


# --- finding claims in prose -----------------------------------------------------------------------

_RUN = re.compile(r"[\d.\s+\-*/^()=]+")  # maximal stretches of arithmetic characters
_GLUED = re.compile(r"[\w\\'\"!?|%&<>\[\]#@~]")  # next to a number, these make it part of something else
_OPERATOR_WORDS = frozenset(
    "of times by plus minus over divided multiplied into than x per squared cubed percent factorial".split()
)
_LAST_WORD = re.compile(r"([A-Za-z]+)\s*$")
_FIRST_WORD = re.compile(r"^\s*([A-Za-z]+)")


def _trim_first(part: str) -> str:
    part = re.sub(r"^\d*\.+\s+", "", part)  # a full stop or list number: "done. 2 + 3 = 5", "1. 2 + 3 = 5"
    while part.startswith("(") and part.count("(") > part.count(")"):
        part = part[1:].lstrip()
    return part


def _trim_last(part: str) -> str:
    part = part.rstrip(".").rstrip()  # "= 324."
    while part.endswith("(") or (part.endswith(")") and part.count(")") > part.count("(")):
        part = part[:-1].rstrip()
    return part


def _first_is_glued(part: str, before: str) -> bool:
    """The first part continues an expression to its left: `x + 2 = ...`, `f(2) = ...`, `of 20 = ...`."""
    if not part or part[0] in "+*/^" or (before and _GLUED.match(before[-1])):
        return True
    word = _LAST_WORD.search(before)
    if word and word.group(1).lower() in _OPERATOR_WORDS:
        return True
    return part[0] == "-" and bool(before.rstrip()) and bool(_GLUED.match(before.rstrip()[-1]))


def _last_is_glued(part: str, after: str) -> bool:
    """The last part continues to its right: `= 6x`, `= 50%`, `= 3 times 4`."""
    if not part or part[-1] in "+-*/^" or (after and _GLUED.match(after[0])):
        return True
    word = _FIRST_WORD.match(after)
    return bool(word and word.group(1).lower() in _OPERATOR_WORDS)


def _run_claims(run: str, before: str, after: str) -> list[Claim]:
    """Claims of one `a = b = c` run: the first clean side against each later one. Sides that do not
    parse, or that are glued to prose/variables at the run's edges, are dropped."""
    parts = [" ".join(p.split()) if len(p) <= 2 * MAX_SIDE_CHARS else "" for p in run.split("=", MAX_CLAIMS)]
    parts[0], parts[-1] = _trim_first(parts[0]), _trim_last(parts[-1])
    trees = [parse(p) if p else None for p in parts]
    if _first_is_glued(parts[0], before):
        trees[0] = None
    if _last_is_glued(parts[-1], after):
        trees[-1] = None
    sides = [(p, t) for p, t in zip(parts, trees) if t is not None]
    if len(sides) < 2:
        return []
    (lhs, lhs_tree), rest = sides[0], sides[1:]
    return [Claim(lhs, rhs) for rhs, rhs_tree in rest if has_operation(lhs_tree) or has_operation(rhs_tree)]


def find_claims(step: str) -> list[Claim]:
    """Every arithmetic equality in `step` (LaTeX or plain): `23 + 58 = 81`, `$\\frac{1}{2} + \\frac{1}{2}
    = 1$`, each link of `a + b = c = d`. Sides with variables, and equalities between bare numbers
    (`x = 20 = ...` leftovers), are not claims."""
    if len(step) > MAX_STEP_CHARS:
        return []
    text = normalize(step)
    claims = []
    for m in _RUN.finditer(text):
        run = m.group(0)
        if "=" in run:
            start = m.start() + len(run) - len(run.lstrip())  # the run without its surrounding spaces,
            end = m.end() - len(run) + len(run.rstrip())  # so its neighbours are the adjacent chars
            claims += _run_claims(text[start:end], text[max(0, start - 40) : start], text[end : end + 40])
            if len(claims) >= MAX_CLAIMS:
                return claims[:MAX_CLAIMS]
    return claims


def check_step(step: str) -> StepCheck:
    """Verdict "wrong" when any claim is false, "correct" when at least one claim could be checked
    and all checked ones hold, "unknown" when no claim could be checked."""
    results = [(c, check_claim(c)) for c in find_claims(step)]
    checked = [(c, ok) for c, ok in results if ok is not None]
    false_claims = [c.text for c, ok in checked if not ok]
    verdict = "wrong" if false_claims else "correct" if checked else "unknown"
    return StepCheck(verdict, len(checked), false_claims)


def check_steps(steps: list[str]) -> list[StepCheck]:
    return [check_step(s) for s in steps]


def first_error(checks: list[StepCheck]) -> int:
    """Index of the first "wrong" step, -1 when none is."""
    return next((i for i, c in enumerate(checks) if c.verdict == "wrong"), -1)
