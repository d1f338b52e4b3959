import random

import pytest

from stages.arithmetic.problems import generate, solution_steps, trace_paragraphs
from stages.arithmetic.space import available, expressions, total
from stages.arithmetic.trees import split_of
from stages.arithmetic.truth import first_error, parse_expression, step_truth


def test_generation_is_deterministic_and_splits_are_disjoint():
    a = [p.text for p in generate("demo", 50, seed=0)]
    assert a == [p.text for p in generate("demo", 50, seed=0)]
    train = {p.text for p in generate("train", 3000, seed=0)}
    evals = {p.text for p in generate("eval", 300, seed=0)}
    assert not train & set(a) and not train & evals and not evals & set(a)
    assert all(split_of(p.expression) == "demo" for p in generate("demo", 50))


def test_reference_traces_are_exactly_true_and_slips_are_found():
    rng = random.Random(0)
    for p in generate("eval", 200, seed=3):
        steps = trace_paragraphs(p, rng, p_check=0.3, p_fix=0.0)
        assert all(step_truth(p.tree, steps)), steps
        assert steps[-1] == f"So the answer is {p.answer}."
        n_ops = len(solution_steps(p.tree))
        slip = rng.randrange(n_ops)
        bad = trace_paragraphs(p, rng, p_check=0.0, p_fix=0.0, slip_at=slip)
        assert first_error(step_truth(p.tree, bad)) == slip


def test_step_truth_rejects_true_claims_that_are_not_steps_of_this_problem():
    p = next(generate("eval", 1, seed=5))
    assert step_truth(p.tree, ["2 + 2 = 4"]) == [False]
    a, op, b, c = solution_steps(p.tree)[0]
    assert step_truth(p.tree, [f"{a} {op} {b} = {c}", "Wait, let me check it again."]) == [True, True]
    assert step_truth(p.tree, [f"{a} {op} {b} = {c + 1}", f"Wait, {a} {op} {b} = {c}, not {c + 1}."]) == [False, True]


def test_asking_for_more_problems_than_a_split_holds_raises_at_the_call():
    assert {s: available(s) for s in ("train", "eval", "demo")} == {"train": 40_372, "eval": 4_844, "demo": 5_038}
    assert total() == 50_254 and total(1, 2) == len(set(expressions(1, 2)))
    with pytest.raises(ValueError, match=r"'demo' holds 5,038 distinct problems with 2-3 operations, so 5,039"):
        generate("demo", 5_039)
    small = available("eval", 1, 1)  # a world small enough to draw dry
    drawn = [p.expression for p in generate("eval", small, seed=2, min_ops=1, max_ops=1)]
    assert len(set(drawn)) == small == 14
    with pytest.raises(ValueError, match=rf"'eval' holds {small} distinct problems with 1-1 operations"):
        generate("eval", small + 1, seed=2, min_ops=1, max_ops=1)


def test_a_step_that_restates_what_is_left_wrongly_is_the_first_error():
    """`8 + 1 = 9, now 9 + 1` is wrong where it is said, not only at the next claim that uses it."""
    tree = parse_expression("2 + 6 + 1")
    steps = ["2 + 6 = 8, now 8 + 1", "8 + 1 = 9, now 9 + 1", "9 + 1 = 10", "So the answer is 10."]
    assert step_truth(tree, steps) == [True, False, False, False]
    slipped = ["2 + 6 = 7, now 7 + 1", "7 + 1 = 8", "So the answer is 8."]  # a slip carried forward
    assert first_error(step_truth(tree, slipped)) == 0 and step_truth(tree, slipped)[1]
    fixed = ["2 + 6 = 7", "Wait, 2 + 6 = 8, not 7, now 8 + 1.", "8 + 1 = 9", "So the answer is 9."]
    assert step_truth(tree, fixed) == [False, True, True, True]
    recheck = ["3 - 3 = 0, now 0 * 4 * 4", "0 * 4 = 0", "Wait, 0 * 4 = 0, not 0, now 0 * 4.", "0 * 4 = 0"]
    assert all(step_truth(parse_expression("(3 - 3) * 4 * 4"), recheck))  # a re-check, not the next step
