"""Symbolic step checker: claims found in prose and LaTeX, exact evaluation, hostile text that must
neither hang nor execute, and a run over real human-labeled PRM800K steps."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from stages.arithmetic.claims import check_step, check_steps, find_claims, first_error
from stages.arithmetic.exact import Claim, check_claim
from stages.label.labelers.symbolic import SymbolicLabeler

PRM800K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "prm800k_sample.jsonl"


@pytest.mark.parametrize(
    "step, claims",
    [
        ("23 + 58 = 81", ["23 + 58 = 81"]),
        ("so 23 + 58 = 81, then", ["23 + 58 = 81"]),
        ("Wait, 81 * 4 = 324, not 314.", ["81 * 4 = 324"]),
        ("2 + 3 = 5 = 10/2", ["2 + 3 = 5", "2 + 3 = 10/2"]),
        ("x = 3 + 4 = 7", ["3 + 4 = 7"]),
        ("1,234 + 1 = 1,235", ["1234 + 1 = 1235"]),
        ("3p + e = 124", []),
        ("x + 2 = 5 + 1", []),
        ("half of 20 = 10", []),
        ("f(2) = 5", []),
        ("So the answer is 307.", []),
    ],
)
def test_find_claims(step, claims):
    assert [c.text for c in find_claims(step)] == claims


@pytest.mark.parametrize(
    "step, verdict, n_claims",
    [
        ("23 + 58 = 81", "correct", 1),
        ("Wait, let me check: 81 * 4 = 324. Yes.", "correct", 1),
        ("Wait, 81 * 4 = 324, not 314.", "correct", 1),
        ("So the answer is 307.", "unknown", 0),
        ("23 + 58 = 82", "wrong", 1),
        ("2 + 2 = 4 and 3 * 3 = 10", "wrong", 2),
        ("(2 + 3) * 4 = 20", "correct", 1),
        ("2 + 3 * 4 = 20", "wrong", 1),
        ("-2^2 + 5 = 1", "correct", 1),
        ("2^{10} = 1024", "correct", 1),
        ("12 ÷ 4 × 3 = 9", "correct", 1),
        ("6 · 7 = 42", "correct", 1),
        (r"$\frac{1}{2} + \frac{1}{2} = 1$", "correct", 1),
        (r"$\dfrac{1}{3} + \frac{1}{6} = \frac{1}{2}$", "correct", 1),
        (r"$\frac{1}{2} + \frac{1}{3} = \frac{2}{5}$", "wrong", 1),
        (r"$3 \times 4 = 12$", "correct", 1),
        (r"$3 \cdot 4 = 13$", "wrong", 1),
        (r"\$1.24 - \$0.58 = \$0.66", "correct", 1),
        ("1,000 * 3 = 3,000", "correct", 1),
        ("0.1 + 0.2 = 0.3", "correct", 1),  # exact: floats would say False
        ("1/3 * 3 = 1", "correct", 1),
        ("2 + 3 = 5 = 6", "wrong", 2),
        ("3p + e = 124", "unknown", 0),
        ("1/0 = 1", "unknown", 0),
        ("4^(1/2) = 2", "unknown", 0),
    ],
)
def test_check_step(step, verdict, n_claims):
    result = check_step(step)
    assert (result.verdict, result.claims) == (verdict, n_claims)
    assert (result.verdict == "wrong") == bool(result.false_claims)


def test_false_claims_are_listed():
    assert check_step("2 + 2 = 4, 3 * 3 = 10 and 5 - 1 = 3").false_claims == ["3 * 3 = 10", "5 - 1 = 3"]


def test_check_claim_is_exact_and_bounded():
    assert check_claim(Claim("10^30 + 1", "1000000000000000000000000000001")) is True
    assert check_claim(Claim("10^30 + 1", "1000000000000000000000000000000")) is False
    assert check_claim(Claim("9^9^9^9", "1")) is None
    assert check_claim(Claim("x + 1", "2")) is None


def test_steps_and_first_error():
    steps = ["23 + 58 = 81", "81 * 4 = 314", "Wait, 81 * 4 = 324, not 314.", "So the answer is 324."]
    checks = check_steps(steps)
    assert [c.verdict for c in checks] == ["correct", "wrong", "correct", "unknown"]
    assert first_error(checks) == 1
    assert first_error(checks[2:]) == -1
    assert first_error([]) == -1


def test_labeler():
    trace = {"steps": [{"text": s} for s in ["23 + 58 = 81", "81 * 4 = 314", "So the answer is 314."]]}
    label = SymbolicLabeler().label([trace])[0]
    assert (label.first_error, label.step_labels, label.note) == (1, [True, False, None], None)
    clean = SymbolicLabeler.label_steps(["23 + 58 = 81", "So the answer is 81."])
    assert (clean.first_error, clean.step_labels) == (-1, [True, None])
    prose = SymbolicLabeler.label_steps(["Let p be the price.", "So the answer is 29."])
    assert (prose.first_error, prose.note) == (None, "not_applicable")


HOSTILE = {
    "power tower": "9**9**9**9 = 1",
    "latex power": "2^{99999999} = 1",
    "nested power": "10^(10^10) = 1",
    "import": "__import__('os').system('echo hi') = 0",
    "long number": "1" * 10_000 + " = 1",
    "nested parens": "(" * 5_000 + "1" + ")" * 5_000 + " = 1",
    "open parens": "(" * 100_000 + "1 = 1",
    "1 MB text": ("so 2 + 2 = 5 and " * 70_000)[:1_000_000],
    "1 MB expression": "1+" * 500_000 + "1 = 1",
    "many links": "1+1=" * 25_000,
    "many minus signs": "-" * 5_000 + "1 = 1",
}


@pytest.mark.parametrize("step", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_steps_are_fast_and_inert(step, capfd):
    start = time.perf_counter()
    result = check_step(step)
    assert time.perf_counter() - start < 1.0
    assert result.verdict in ("unknown", "correct")  # nothing here is a checkable false claim
    assert "hi" not in capfd.readouterr().out


def test_code_in_a_step_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    check_step(f"__import__('pathlib').Path({str(marker)!r}).touch() = 0")
    check_step(f"$(__import__('pathlib').Path({str(marker)!r}).touch()) + 1 = 1$")
    assert not marker.exists()


def _prm800k_steps() -> list[tuple[str, int | None]]:
    """(text, human rating) of every labeled completion, human-written ones included."""
    if not PRM800K.is_file():
        pytest.skip(f"PRM800K sample not found at {PRM800K}")
    out = []
    for line in PRM800K.read_text().splitlines():
        for step in json.loads(line)["label"]["steps"]:
            for c in [*(step.get("completions") or []), step.get("human_completion")]:
                if c and c.get("text") is not None:
                    out.append((c["text"], c.get("rating")))
    return out


def test_prm800k_checker_is_fast_and_raises_no_false_alarm():
    """On this sample (302 step texts, mostly algebra) the checker decides 5 steps, all "correct",
    and says "wrong" on none: precision of "wrong" is not measurable here, so what is asserted is
    that it never flags a step the human rated +1, and that it does decide a few LaTeX steps."""
    steps = _prm800k_steps()
    assert len(steps) > 200
    verdicts = []
    for text, rating in steps:
        start = time.perf_counter()
        verdicts.append((check_step(text).verdict, rating))
        assert time.perf_counter() - start < 1.0
    assert not [r for v, r in verdicts if v == "wrong" and r == 1]
    assert sum(v != "unknown" for v, _ in verdicts) >= 4


def test_prm800k_corrupted_results_are_caught():
    """Every real step the checker calls "correct" turns "wrong" when the number after its first `=`
    is off by one."""
    decided = [text for text, _ in _prm800k_steps() if check_step(text).verdict == "correct"]
    assert decided
    for text in decided:
        corrupted = re.sub(r"=\s*(\d+)", lambda m: f"={int(m.group(1)) + 1}", text, count=1)
        assert check_step(corrupted).verdict == "wrong", corrupted
