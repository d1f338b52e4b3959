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
