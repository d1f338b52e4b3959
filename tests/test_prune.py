"""Confidence-pruned generation (`stages.prune`): the window statistics by hand, online stopping on a
scripted engine, and each strategy on real vLLM (the session's teacher engine) on a few problems."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from schemas import PROBLEMS, REJECTS, TRACES
from stages.engine import Generation, Sample, SamplingConfig
from stages.generate.stage import Generate, GenerateConfig, problem_seed
from stages.problems.stage import ProblemSourceConfig, load_problems
from stages.prune import StrategyConfig, run_strategy, vote
from stages.prune.chunked import concat
from stages.prune.confidence import (
    first_window_below,
    group_confidences,
    keep_top,
    lowest_group_confidence,
    token_confidence,
    vote_weight,
    weighted_vote,
)
from stages.segment import SegmentConfig
from stages.shards import read_table, shard_paths, write_table
from stages.trace_rows import build_trace


def test_window_statistics_match_a_hand_computed_example():
    # top-k logprob means -> C_i = their negation
    s = Sample("abcde", [1, 2, 3, 4, 5], "stop", topk_mean=[-4.0, -2.0, -1.0, -3.0, -5.0])
    conf = token_confidence(s)
    assert conf.tolist() == [4.0, 2.0, 1.0, 3.0, 5.0]
    # windows of 2: (4+2)/2, (2+1)/2, (1+3)/2, (3+5)/2
    assert group_confidences(conf, 2).tolist() == [3.0, 1.5, 2.0, 4.0]
    assert lowest_group_confidence(conf, 2) == 1.5
    # windows of 3: 7/3, 6/3, 9/3
    assert group_confidences(conf, 3) == pytest.approx([7 / 3, 2.0, 3.0])
    assert lowest_group_confidence(conf, 3) == pytest.approx(2.0)
    # a trace shorter than the window is one window: the mean of all (15/5)
    assert group_confidences(conf, 8).tolist() == [3.0]
    # online: the first full window below 1.8 is tokens 1..2, ending (exclusive) at token 3
    assert first_window_below(conf, 2, 1.8) == 3
    assert first_window_below(conf, 2, 1.8, start=3) is None  # already checked up to token 3
    assert first_window_below(conf, 2, 2.5, start=3) == 4  # window 2..3 (mean 2.0) ends at 4
    assert first_window_below(conf, 8, 10.0) is None  # no full window yet: never judged
    with pytest.raises(ValueError, match="topk_mean"):
        token_confidence(Sample("ab", [1, 2], "stop"))
    # the drawn token's own logprob: a sampled slip lowers it where C_i stays put
    slip = Sample("ab", [1, 2], "stop", logprobs=[-0.1, -4.0], topk_mean=[-3.0, -3.0])
    assert token_confidence(slip).tolist() == [3.0, 3.0]
    assert token_confidence(slip, "chosen").tolist() == [-0.1, -4.0]


def test_weighted_vote_and_top_share():
    assert weighted_vote(["1", "2", "2", None], [1, 1, 1, 9]) == "2"
    assert weighted_vote(["1", "2", "2"], [5.0, 1.0, 1.0]) == "1"  # confidence outweighs count
    assert weighted_vote(["3", "4"], [1, 1]) == "3"  # a tie goes to the answer seen first
    assert weighted_vote([None], [1]) is None
    assert keep_top([0.1, 0.9, float("nan"), 0.5], 0.5) == [1, 3]
    assert keep_top([0.2], 0.1) == [0]  # at least one is kept
    # a mean logprob votes with its probability: a negative weight would favour fewer votes
    assert vote_weight(-0.5, "chosen") == pytest.approx(np.exp(-0.5)) and vote_weight(2.0) == 2.0
    assert weighted_vote(["1", "2", "2"], [vote_weight(-0.1, "chosen")] + [vote_weight(-0.2, "chosen")] * 2) == "2"


def test_a_continued_sample_is_one_sample_with_shifted_offsets():
    a = Sample("ab", [1, 2], "length", [-0.1, -0.2], [0.1, 0.2], [0, 1], topk_mean=[-1.0, -2.0])
    b = Sample("cde", [3, 4], "stop", [-0.3, -0.4], [0.3, 0.4], [0, 2], topk_mean=[-3.0, -4.0])
    c = concat(a, b)
    assert (c.text, c.token_ids, c.finish_reason) == ("abcde", [1, 2, 3, 4], "stop")
    assert c.offsets == [0, 1, 2, 4] and c.logprobs == [-0.1, -0.2, -0.3, -0.4]
    assert c.entropies == [0.1, 0.2, 0.3, 0.4] and c.topk_mean == [-1.0, -2.0, -3.0, -4.0]


ANSWER = "</think>\n\nThe answer is \\boxed{7}."


class ScriptedEngine:
    """An `Engine` whose traces follow scripts: trace i's text is PLANS[i] (its first character
    names it, so a resubmitted prefix tells which script to go on with); each character has token
    confidence 1.0 if it is `l` (low), else 5.0. It records every request."""

    name = "scripted"
    max_model_len = 10_000

    def __init__(self, plans: list[str], first_seeds: dict[int, int]):
        self.plans, self.first_seeds, self.requests = plans, first_seeds, []

    def chat_prompt(self, user: str) -> str:
        return f"Q: {user}\n"

    def count_tokens(self, text: str) -> int:
        return len(text)

    def generate(self, prompts, sampling: SamplingConfig, seeds=None) -> list[Generation]:
        out = []
        for prompt, seed in zip(prompts, seeds):
            head, _, done = prompt.partition("\n")
            plan = self.plans[self.first_seeds[seed]] if not done else self.plans[int(done[0])]
            text = plan[len(done) : len(done) + sampling.max_tokens]
            self.requests.append((len(done), len(text)))
            finish = "stop" if len(done) + len(text) == len(plan) else "length"
            n = len(text)
            tm = [-1.0 if ch == "l" else -5.0 for ch in text]
            out.append(
                Generation(
                    prompt, [Sample(text, list(range(n)), finish, [-0.1] * n, [0.5] * n, list(range(n)), None, tm)]
                )
            )
        return out

    def score(self, prompts, continuations):
        return [None] * len(prompts)

    def close(self) -> None:
        pass


PLANS = [
    "0" + "h" * 23 + ANSWER,  # warm-up: lowest group confidence 5.0
    "1" + "h" * 9 + "ll" + "h" * 12 + ANSWER,  # warm-up: a window of 4 with two `l`: (5+5+1+1)/4 = 3.0
    "2" + "h" * 11 + "llllll" + "h" * 30 + ANSWER,  # three `l` in a window of 4 (2.0 < 3.0) ends at token 15
    "3" + "h" * 40 + ANSWER,  # never low: runs to the end
]


def scripted(problem_id: str = "p0") -> tuple[ScriptedEngine, int]:
    from stages.prune.chunked import sub_seed

    seed = problem_seed(problem_id, 0)
    return ScriptedEngine(PLANS, {sub_seed(sub_seed(seed, i), 0): i for i in range(4)}), seed


def test_online_deepconf_stops_a_trace_at_the_chunk_boundary_after_its_window_falls():
    engine, seed = scripted()
    sampling = SamplingConfig(n=4, max_tokens=400, seed=0)
    cfg = StrategyConfig(kind="deepconf", mode="online", window=4, percentile=0, warmup=2, chunk_tokens=8)
    [out] = run_strategy(cfg, engine.generate, [engine.chat_prompt("x")], [seed], sampling)
    assert sorted(i for i, _ in out.kept) == [0, 1, 3]
    [stopped] = out.pruned
    # threshold = min(5.0, 3.0) = 3.0; trace 2's first window below it ends at token 15 (chars
    # 12..14 are `lll` after an `h`): found at the boundary after chunk 2, 16 tokens generated
    assert stopped.index == 2 and stopped.reason == "pruned:deepconf" and stopped.tokens == 16
    assert "token 15" in stopped.detail and stopped.sample.text == PLANS[2][:16]
    kept = dict(out.kept)
    assert kept[3].text == PLANS[3] and kept[3].offsets == list(
        range(len(PLANS[3]))
    )  # one sample, glued from 10 chunks
    assert out.tokens_generated == len(PLANS[0]) + len(PLANS[1]) + 16 + len(PLANS[3])
    assert out.weights == [5.0, 3.0, 5.0] and vote(engine.chat_prompt("x"), out) == "7"
    # the warm-up went in one request each, in full; the others chunk by chunk
    assert (0, len(PLANS[0])) in engine.requests and (8, 8) in engine.requests


def test_online_deepconf_with_consensus_never_starts_the_rest_when_the_warm_up_agrees():
    engine, seed = scripted()
    cfg = StrategyConfig(kind="deepconf", window=4, percentile=0, warmup=2, chunk_tokens=8, consensus=0.95)
    [out] = run_strategy(cfg, engine.generate, [engine.chat_prompt("x")], [seed], SamplingConfig(n=4, seed=0))
    assert sorted(i for i, _ in out.kept) == [0, 1]
    assert {(p.index, p.reason, p.tokens) for p in out.pruned} == {
        (2, "pruned:deepconf-consensus", 0),
        (3, "pruned:deepconf-consensus", 0),
    }
    assert len(engine.requests) == 2


def write_problems(folder, rows):
    write_table(pa.Table.from_pylist(rows, schema=PROBLEMS.arrow_schema), folder / "problems-00000.parquet", PROBLEMS)


def read_all(folder, features):
    return pa.concat_tables([read_table(p, features) for p in shard_paths(folder)]).to_pylist()


def test_the_generate_stage_writes_pruned_traces_to_its_rejects_with_reason_and_tokens(tmp_path):
    engine, _ = scripted("p0")
    write_problems(
        tmp_path / "problems",
        [{"problem_id": "p0", "source": "t", "problem": "x", "answer": "7", "split": "demo", "meta": "{}"}],
    )
    strategy = StrategyConfig(kind="deepconf", window=4, percentile=0, warmup=2, chunk_tokens=8)
    cfg = GenerateConfig(sampling=SamplingConfig(n=4, max_tokens=400, seed=0), strategy=strategy, chunk_size=4)
    step = Generate(tmp_path / "problems", tmp_path / "traces", cfg, engines={"generator": engine})
    step.run()
    traces, rejects = read_all(tmp_path / "traces", TRACES), read_all(tmp_path / "traces_rejects", REJECTS)
    assert sorted(t["sample_index"] for t in traces) == [0, 1, 3]
    assert all(t["final_answer"] == "7" and json.loads(t["sampling"])["strategy"]["kind"] == "deepconf" for t in traces)
    [r] = rejects
    assert r["reason"] == "pruned:deepconf" and r["detail"].endswith("16 tokens")
    assert json.loads(r["payload"])["tokens"] == 16
    assert step.stats["tokens_pruned"].total == 16 and step.stats["rejected_pruned:deepconf"].total == 1
    assert step.stats["tokens_generated"].total == sum(len(p) for p in PLANS) - len(PLANS[2]) + 16


STRATEGIES = {
    "deepconf-offline": StrategyConfig(kind="deepconf", mode="offline", eta=0.5),
    "deepconf-online": StrategyConfig(kind="deepconf", percentile=90, warmup=2, chunk_tokens=24, window=16),
    "cat": StrategyConfig(kind="cat", branch=2, percentile=50, chunk_tokens=48),
    "think_at_n": StrategyConfig(kind="think_at_n", eta=0.5, prefix_tokens=50),
}


@pytest.mark.vllm
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_each_strategy_on_real_vllm_gives_whole_traces_and_accounts_for_every_token(name, teacher_engine):
    rows = list(load_problems(ProblemSourceConfig(split="eval", limit=3)))
    prompts = [teacher_engine.chat_prompt(r["problem"]) for r in rows]
    seeds = [problem_seed(r["problem_id"], 0) for r in rows]
    sampling = SamplingConfig(n=4, max_tokens=300, logprobs=5, seed=0)
    outs = run_strategy(STRATEGIES[name], teacher_engine.generate, prompts, seeds, sampling, teacher_engine.name)
    tok = teacher_engine.tokenizer
    for out in outs:
        assert out.kept and out.tokens_generated > 0
        assert len(out.weights) == len(out.kept) and len({i for i, _ in out.kept}) == len(out.kept)
        assert all(p.reason.startswith("pruned:") for p in out.pruned)
        for _, s in out.kept:  # a trace continued over chunks is one sample, its arrays aligned
            assert len(s.token_ids) == len(s.logprobs) == len(s.offsets) == len(s.topk_mean) == len(s.entropies)
            assert s.text == tok.decode(s.token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            assert np.all(np.diff(s.offsets) >= 0) and s.offsets[0] == 0 and s.offsets[-1] <= len(s.text)
            assert max(s.topk_mean) <= 0
    if name == "deepconf-offline":
        assert all(len(o.kept) == 2 and len(o.pruned) == 2 for o in outs)
    if name == "think_at_n":
        assert all(len(o.kept) == 2 for o in outs) and all(p.tokens <= 50 for o in outs for p in o.pruned)


@pytest.mark.vllm
def test_pruned_rollouts_label_traces_with_their_own_token_count(teacher_engine):
    from stages.label.labelers.mc import MonteCarloLabeler
    from stages.rollouts import RolloutConfig

    rows = list(load_problems(ProblemSourceConfig(split="eval", limit=3)))
    prompts = [teacher_engine.chat_prompt(r["problem"]) for r in rows]
    gens = teacher_engine.generate(prompts, SamplingConfig(n=1, max_tokens=300, logprobs=1, seed=3))
    traces = []
    for r, p, g in zip(rows, prompts, gens):
        t = build_trace(r, 0, g.samples[0], teacher_engine.name, "{}", p, SegmentConfig())
        if t["steps"]:
            traces.append(t)
    pruning = StrategyConfig(kind="deepconf", percentile=10, warmup=2, window=16, consensus=0.95)
    base = dict(strategy="per_step", k=4, max_tokens=200, seed=5)
    plain = MonteCarloLabeler(teacher_engine, RolloutConfig(**base)).label(traces)
    pruned = MonteCarloLabeler(teacher_engine, RolloutConfig(**base, pruning=pruning)).label(traces)
    for p, q in zip(plain, pruned):
        assert all(v is None or 0 <= v <= 1 for v in q.step_values)
        assert 0 < q.tokens and len(q.step_values) == len(p.step_values)
    # the consensus stop skips the rest of a prefix's rollouts once the warm-up agrees
    assert sum(q.tokens for q in pruned) < sum(p.tokens for p in plain)
