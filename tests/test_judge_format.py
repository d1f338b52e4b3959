from stages.label.judge_format import judge_prompt, parse_verdict


def test_prompts_index_steps_from_zero():
    p = judge_prompt("What is 1 + 2?", ["1 + 2 = 3", "So the answer is 3."], "processbench")
    assert "<paragraph_0>\n1 + 2 = 3\n</paragraph_0>" in p and "<paragraph_1>" in p and "\\boxed{}" in p
    assert "[1] So the answer is 3." in judge_prompt("q", ["a", "So the answer is 3."], "compact")


def test_parse_verdict_well_formed_and_malformed():
    assert parse_verdict("<think>[0] ok</think>\n\n\\boxed{-1}", 3).index == -1
    assert parse_verdict("\\boxed{ 2 }", 3).index == 2
    assert parse_verdict("<think>\\boxed{0}</think> final: \\boxed{1}", 3).index == 1
    assert parse_verdict("the first error is step 1", 3).error == "no_boxed_index"
    assert parse_verdict("\\boxed{7}", 3).error == "index_out_of_range"
    assert parse_verdict("\\boxed{-2}", 3).error == "index_out_of_range"
    assert parse_verdict("\\boxed{one}", 3).index is None


def test_pairs_lines_put_claim_and_recomputed_digits_side_by_side():
    from infra.tiny_reasoner.judge_data import judge_target, pairs_line

    assert pairs_line(1, 13, "-", 4, 3, 9) == "[1] 13 - 4 = 3; 13 - 4 = 9; 00 39 wrong"
    assert pairs_line(0, 7, "+", 9, 16, 16) == "[0] 7 + 9 = 16; 7 + 9 = 16; 11 66 ok"
    assert pairs_line(2, 34, "*", 3, 102, 102).endswith("= 102 ok")  # past two digits: no pairs
    steps = ["7 * 2 = 16, now 16 - 7", "16 - 7 = 9", "So the answer is 9."]
    assert judge_target(steps, [False, False, False], "pairs") == (
        "<think>\n[0] 7 * 2 = 16; 7 * 2 = 14; 11 64 wrong\n</think>\n\n\\boxed{0}"
    )


def test_drill_verdicts_say_whether_each_claim_is_right():
    import random
    import re

    from infra.tiny_reasoner.judge_data import drill_example
    from stages.arithmetic.problems import generate
    from stages.arithmetic.trees import apply

    problems = list(generate("train", 200, seed=0))
    verdicts = []
    for seed in range(20):
        prompt, target = drill_example(problems, random.Random(seed))
        for line in target.splitlines():
            a, op, b, c = re.match(r"\[\d+\] (\d+) (\S) (\d+) = (\d+);", line).groups()
            verdict = line.rsplit(" ", 1)[1]
            assert verdict == ("ok" if apply(op, int(a), int(b)) == int(c) else "wrong"), line
            assert f"{a} {op} {b} = {c}" in prompt
            verdicts.append(verdict)
    assert 0.3 < verdicts.count("wrong") / len(verdicts) < 0.7


def test_a_verdict_whose_reasoning_misreads_the_steps_is_rejected_with_its_reason():
    from stages.label.judge_format import reasoning_error

    steps = ["6 + 6 = 11", "Wait, 6 + 6 = 12, not 11, now 12 + 3.", "12 + 3 = 15", "So the answer is 15."]
    faithful = "<think>\n[0] 6 + 6 = 11; 6 + 6 = 12; 11 12 wrong\n</think>\n\n\\boxed{0}"
    assert reasoning_error(faithful, steps) is None
    assert reasoning_error("<think>\n[0] 6 + 6 = 11; 6 + 6 = 12; 11 22 ok\n</think>\\boxed{-1}", steps) == (
        "verdict_contradicts_reasoning"
    )
    misread = "<think>\n[0] 6 + 6 = 12; 6 + 6 = 12; 11 22 ok\n\n[1] ok\n</think>\\boxed{-1}"
    assert reasoning_error(misread, steps) == "misquoted_step"
    assert reasoning_error("<think>\n[7] ok\n</think>\\boxed{-1}", steps) == "reasoning_names_missing_step"
    prose = "<think>\n[0] looks fine to me.\n[9] is not a step.\n</think>The steps are right. \\boxed{-1}"
    assert reasoning_error(prose, steps) is None  # free-form reasoning: not checked
