"""Answer verifiers: math-verify equivalences and non-equivalences, None handling, the cache, threads,
and the guards that keep hostile answers from hanging or raising."""

from __future__ import annotations

import threading
import time

import pytest

from stages.verification import equivalence
from stages.verification import verify as v
from stages.verification.verify import VERIFIERS, VERIFY_ERRORS, VERIFY_REJECTED, explosive, register, verify_answer


@pytest.mark.parametrize(
    "gold, predicted",
    [
        (r"\frac{1}{2}", "0.5"),
        ("0.5", r"\frac{1}{2}"),
        (r"\frac{1}{2}", "1/2"),
        (r"\dfrac{3}{4}", "0.75"),
        (r"\boxed{3}", "3"),
        ("3", r"\boxed{3}"),
        ("5", r"5\text{ cm}"),
        (r"5\text{ cm}", "5"),
        ("29", r"\$29"),
        (r"\$1.24", "1.24"),
        (r"50\%", "50"),
        (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}"),
        ("10^{3}", "1000"),
        ("-3", "- 3"),
        ("1,000", "1000"),
        ("(1,2)", "(1, 2)"),
        ("7", "So the answer is 7."),
    ],
)
def test_math_equivalences(gold, predicted):
    assert verify_answer(gold, predicted) is True


@pytest.mark.parametrize(
    "gold, predicted",
    [("1/2", "2"), ("2", "1/2"), ("3", "4"), (r"\pi", "3.14159"), (r"\$29", "30"), ("(1,2)", "[1,2]"), ("10", "100")],
)
def test_math_non_equivalences(gold, predicted):
    assert verify_answer(gold, predicted) is False


def test_none_handling():
    assert verify_answer(None, "3") is None
    assert verify_answer(None, None) is None
    assert verify_answer("3", None) is False
    assert verify_answer("3", "") is False


@pytest.mark.parametrize(
    "verifier, gold, predicted, expected",
    [
        ("int", "1,234", " 1234. ", True),
        ("int", "42", r"\boxed{42}", True),
        ("int", "7", r"\$7", True),
        ("int", "-3", "-3", True),
        ("int", "42", "43", False),
        ("int", "42", "42.5", False),
        ("int", "42", "forty-two", False),
        ("exact", "Monday", " monday. ", True),
        ("exact", r"\text{(A)}", r"\boxed{\text{(A)}}", True),
        ("exact", "Monday", "Tuesday", False),
    ],
)
def test_int_and_exact(verifier, gold, predicted, expected):
    assert verify_answer(gold, predicted, verifier=verifier) is expected


def test_cache_hits_repeated_pairs():
    v.cache_clear()
    assert verify_answer("0.25", r"\frac{1}{4}") is True
    hits = v.cache_info().hits
    assert verify_answer("0.25", r"\frac{1}{4}") is True
    assert v.cache_info().hits == hits + 1


def test_works_from_a_worker_thread():
    errors_before = VERIFY_ERRORS["math"]
    results: list[bool | None] = []

    def work() -> None:
        v.cache_clear()  # make sure the thread really runs math-verify
        results.extend([verify_answer(r"\frac{3}{8}", "0.375"), verify_answer(r"\frac{3}{8}", "0.38")])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    assert results == [True, False]
    assert VERIFY_ERRORS["math"] == errors_before


@pytest.mark.parametrize("predicted", ["9^{9^{9}}", "2^{999999999}", "(10^{10})!", "10^{10^{10}}", "1" * 5_000])
def test_hostile_answers_are_rejected_fast_in_a_thread(predicted):
    rejected = VERIFY_REJECTED["math"]
    results: list[bool | None] = []
    start = time.perf_counter()
    thread = threading.Thread(target=lambda: results.append(verify_answer("1", predicted)), daemon=True)
    thread.start()
    thread.join(5)
    assert results == [False]
    assert time.perf_counter() - start < 1.0
    assert VERIFY_REJECTED["math"] == rejected + 1


def test_explosive_only_flags_numeric_blowups():
    assert explosive("9^{9^{9}}") and explosive("{10^{9999}}^{9999}") and explosive("2**2**40")
    assert explosive("2^{123456}") and explosive("(10^{10})!")
    assert (
        not explosive("e^{-x^2}") and not explosive("2^{10}") and not explosive(r"\frac{1}{2}") and not explosive("5!")
    )


def test_errors_are_counted_not_raised(monkeypatch):
    from math_verify.errors import TimeoutException

    def boom(*args, **kwargs):
        raise TimeoutException("Operation timed out!")  # a BaseException, not an Exception

    v.cache_clear()
    before = VERIFY_ERRORS["math"]
    monkeypatch.setattr(equivalence, "verify", boom)  # math-verify, as the `math` verifier calls it
    assert verify_answer("1", "1") is False
    assert VERIFY_ERRORS["math"] == before + 1

    unknown = VERIFY_ERRORS["no-such-verifier"]
    assert verify_answer("1", "1", verifier="no-such-verifier") is False
    assert VERIFY_ERRORS["no-such-verifier"] == unknown + 1


def test_register_adds_a_named_verifier():
    @register("test-length")
    def same_length(gold: str, predicted: str | None) -> bool:
        if gold == "raise":
            raise RuntimeError("broken verifier")
        return predicted is not None and len(gold) == len(predicted)

    try:
        assert VERIFIERS["test-length"] is same_length
        assert verify_answer("abc", "xyz", verifier="test-length") is True
        assert verify_answer("abc", "xy", verifier="test-length") is False
        before = VERIFY_ERRORS["test-length"]
        assert verify_answer("raise", "x", verifier="test-length") is False
        assert VERIFY_ERRORS["test-length"] == before + 1
    finally:
        del VERIFIERS["test-length"]
