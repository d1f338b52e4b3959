"""The levers on what labels and pairs cost (`thoughtmill bench cost`): step pairs drawn from the
label stage's rollouts, adaptive k, rollouts stopped at the thinking's end, and disagreements
resolved by evidence. Pure functions and a scripted engine: no vLLM."""

from __future__ import annotations

import json

import pytest

from stages.engine import Generation, Sample, SamplingConfig
from stages.label.base import TraceLabel
from stages.label.consensus import ConsensusConfig, consensus, settled
from stages.label.labelers.mc import MonteCarloLabeler
from stages.label.resolve import evidenced_first_error, resolve_disputes
from stages.pairs.step_pairs import NextStepConfig, next_step_pairs
from stages.rollouts import RolloutConfig, first_step, rollout_correct, rollout_values
from stages.segment import segment, step_prefix

PROMPT = "<|user|>What is 3 * 2 - 3?<|assistant|>"
THINKING = "\n3 * 2 = 6, now 6 - 3\n\n6 - 3 = 4\n\nSo the answer is 4.\n"
COMPLETION = "<think>" + THINKING + "</think>\n\nThe answer is \\boxed{4}."


def trace(**kw) -> dict:
    """A labeled trace whose step 1 (`6 - 3 = 4`) is its first error."""
    steps = segment(THINKING, len("<think>"), [], [], [])
    steps = [s | {"label": ok, "mean_logprob": -0.5} for s, ok in zip(steps, [True, False, False])]
    return {
        "trace_id": "t0",
        "problem_id": "p",
        "problem": "What is 3 * 2 - 3?",
        "gold_answer": "3",
        "prompt": PROMPT,
        "completion": COMPLETION,
        "thinking_start": len("<think>"),
        "steps": steps,
        "consensus": "agree",
        "first_error": 1,
        "branches": [],
    } | kw


def branch(after: int, text: str, reached: bool, confidence: float) -> dict:
    return {"after": after, "text": text, "reached": reached, "confidence": confidence}


def test_pairs_from_the_label_rollouts_keep_the_step_pair_invariants():
    branches = [
        branch(0, "6 - 3 = 3", True, -0.3),  # reached the answer: a chosen candidate
        branch(0, "6 - 3 = 3", True, -0.2),
        branch(0, "6 - 3 = 5", False, -0.1),  # missed, and its first step is a false claim: rejected
        branch(0, "6 - 3 = 3, now 3", False, -0.1),  # missed later: says nothing of its first step
        branch(1, "So the answer is 4.", False, -0.1),  # after the error: no correct side
    ]
    t = trace(branches=branches)
    pairs, sampled, rolled = next_step_pairs(None, [t], NextStepConfig(source="rollouts"), RolloutConfig())  # type: ignore[arg-type]
    assert (sampled, rolled) == (0, 0)  # no second sampling pass
    pairs = [p for p in pairs if p is not None]
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("6 - 3 = 3", "6 - 3 = 5"), ("6 - 3 = 3", "6 - 3 = 4")]
    for p in pairs:
        assert p["prefix"] == step_prefix(t, 0)[len(PROMPT) :] == "<think>\n3 * 2 = 6, now 6 - 3\n\n"
        assert p["chosen"].strip() != p["rejected"].strip() and p["margin"] >= 0
        assert json.loads(p["provenance"])["step"] == 1
    # the trace's own step is the rejected side of the second: prefix + it is the trace's own text
    assert COMPLETION.startswith(pairs[1]["prefix"] + pairs[1]["rejected"])
    assert (
        next_step_pairs(
            None, [trace(branches=branches, consensus="disagree")], NextStepConfig(source="rollouts"), RolloutConfig()
        )[0]
        == []
    )  # type: ignore[arg-type]


def test_siblings_are_the_rollouts_from_the_prompt():
    """The tree's root: a sibling whose first step is a false claim is a rejected first step."""
    slip = "<think>\n3 * 2 = 7, now 7 - 3\n\n7 - 3 = 4\n\nSo the answer is 4.\n</think>\n\nThe answer is \\boxed{4}."
    sibling = trace(trace_id="t1", completion=slip, consensus="disagree", final_correct=False)  # labels unused
    sibling["steps"] = segment(slip[len("<think>") : slip.index("</think>")], len("<think>"), [], [], [])
    sibling["steps"][0]["mean_logprob"] = -0.2
    pairs, _, _ = next_step_pairs(None, [trace(), sibling], NextStepConfig(source="rollouts"), RolloutConfig())  # type: ignore[arg-type]
    [p] = [p for p in pairs if p is not None]
    assert (p["prefix"], p["chosen"], p["rejected"]) == ("<think>", "\n3 * 2 = 6, now 6 - 3", "\n3 * 2 = 7, now 7 - 3")
    assert json.loads(p["provenance"])["step"] == 0 and slip.startswith(p["prefix"] + p["rejected"])


class OutcomeEngine:
    """Answers every rollout request from a script: per prompt, the outcomes of its draws in order
    (True: the rollout reaches the gold answer 3). Records each request's (prompt, n, seed)."""

    name = "scripted"

    def __init__(self, script: dict[str, list[bool]]) -> None:
        self.script, self.drawn, self.requests = script, {p: 0 for p in script}, []

    def generate(self, prompts, sampling: SamplingConfig, seeds=None) -> list[Generation]:
        out = []
        for p in prompts:
            self.requests.append((p, sampling.n, sampling.seed))
            self.stop = sampling.stop
            samples = []
            for _ in range(sampling.n):
                hit = self.script[p][self.drawn[p]]
                self.drawn[p] += 1
                # a rollout that stopped at the thinking's end (the stop string is dropped)
                text = f"6 - 3 = {3 if hit else 5}\n\nSo the answer is {3 if hit else 5}.\n"
                samples.append(Sample(text, list(range(10)), "stop", [-0.1] * 10, [], list(range(10))))
            out.append(Generation(p, samples))
        return out


def test_adaptive_k_stops_a_prefix_at_its_first_hit():
    t = trace()
    a, b, c = (step_prefix(t, i) for i in (-1, 0, 1))
    engine = OutcomeEngine({a: [True] * 4, b: [False, False, True, True], c: [False] * 4})
    cfg = RolloutConfig(k=4, adaptive_k=True, answer_from="thinking")
    got = rollout_values(engine, cfg, [(t, a), (t, b), (t, c)])  # type: ignore[arg-type]
    # a: decided by its first draw; b: by its third; c: MC = 0 needs all k misses
    assert [r.value for r in got] == [1.0, 1 / 3, 0.0]
    assert [r.tokens for r in got] == [10, 30, 40]
    assert [len(r.branches) for r in got] == [1, 3, 4]
    assert got[1].branches[-1] == ("6 - 3 = 3", True, -0.1)
    # one request per undecided prefix per round, each round a new seed, n = 1
    assert [(n, seed) for _, n, seed in engine.requests] == [(1, 0)] * 3 + [(1, 1)] * 2 + [(1, 2)] * 2 + [(1, 3)]
    plain = OutcomeEngine({a: [True] * 4, b: [False, False, True, True], c: [False] * 4})
    got = rollout_values(plain, cfg.model_copy(update={"adaptive_k": False}), [(t, a), (t, b), (t, c)])  # type: ignore[arg-type]
    assert [r.value for r in got] == [1.0, 0.5, 0.0] and sum(r.tokens for r in got) == 120


def test_adaptive_binary_search_finds_the_same_first_error():
    t = trace(gold_answer="3", final_answer="4")
    prefixes = {i: step_prefix(t, i) for i in range(3)}
    script = {prefixes[0]: [False, True, True, True], prefixes[1]: [False] * 4, prefixes[2]: [False] * 4}
    for adaptive in (False, True):
        engine = OutcomeEngine({p: list(s) for p, s in script.items()})
        cfg = RolloutConfig(k=4, adaptive_k=adaptive, answer_from="thinking")
        (label,) = MonteCarloLabeler(engine, cfg).label([t])  # type: ignore[arg-type]
        assert label.first_error == 1
        assert {b["after"] for b in label.branches} == {0, 1}
    assert label.tokens == 20 + 40  # adaptive: 2 draws at step 0, 4 at step 1 (plain: 80)


def test_a_rollout_stopped_at_the_thinking_end_is_scored_by_its_conclusion():
    t = trace()
    prefix = step_prefix(t, 0)
    assert rollout_correct(t, prefix, "6 - 3 = 3\n\nSo the answer is 3.\n", "math", "thinking")
    assert not rollout_correct(t, prefix, "6 - 3 = 3\n\nSo the answer is 3.\n", "math", "final")  # no answer yet
    assert rollout_correct(t, prefix, "6 - 3 = 3\n</think>\n\nThe answer is \\boxed{3}.", "math", "final")
    last = "So the answer is 3.\n</think>\n\nThe answer is \\boxed{3}."  # a last step, not stopped
    assert first_step(Sample(last, [0, 1], "stop", [-0.5, -0.7], [], [0, 25]))[0] == "So the answer is 3.\n"
    engine = OutcomeEngine({prefix: [True]})
    [r] = rollout_values(engine, RolloutConfig(k=1, answer_from="thinking"), [(t, prefix)])  # type: ignore[arg-type]
    assert engine.stop == ["</think>"] and r.value == 1.0  # vLLM stops there and drops the tag


def test_a_dispute_is_resolved_by_the_earliest_evidenced_error():
    v = {"mc": TraceLabel(2), "judge": TraceLabel(-1), "symbolic": TraceLabel(1)}
    assert consensus(v, 3, ConsensusConfig()).status == "disagree"
    assert evidenced_first_error(v, mc_confirmed=True) == 1  # the false claim comes first
    assert evidenced_first_error({**v, "symbolic": TraceLabel(-1)}, mc_confirmed=True) == 2
    assert evidenced_first_error({**v, "symbolic": TraceLabel(-1)}, mc_confirmed=False) is None  # opinions only
    r = settled("resolved", 1, 3, ConsensusConfig())
    assert (r.status, r.first_error, r.step_labels) == ("resolved", 1, [True, False, False])


def test_a_recheck_that_reaches_the_answer_withdraws_the_mc_claim():
    t = trace()
    disputed = {"mc": TraceLabel(1), "judge": TraceLabel(-1), "symbolic": TraceLabel(None)}
    prefix = step_prefix(t, 1)
    for script, expected in (([False] * 4, 1), ([False, True], None)):
        engine = OutcomeEngine({prefix: script})
        cfg = RolloutConfig(k=4, seed=5, answer_from="thinking")
        [(first, tokens)] = resolve_disputes(engine, cfg, 4, [t], [disputed])  # type: ignore[arg-type]
        assert first == expected and tokens == 10 * len(script)
        assert engine.requests[0][2] == 9  # seeds past the labeler's own rounds: new draws


def test_the_cost_bench_scores_pairs_against_exact_truth_and_projects_hours():
    from flows.bench.cost import pair_accuracy, projection

    t = trace()
    right = {"chosen": "6 - 3 = 3", "rejected": "6 - 3 = 4", "provenance": json.dumps({"trace": "t0", "step": 1})}
    flipped = right | {"chosen": "6 - 3 = 4", "rejected": "6 - 3 = 3"}
    assert pair_accuracy([right, flipped], {"t0": t}) == 0.5
    gen, labels = projection(9.0)  # the scale: 800k traces x 4k tokens on 8 GPUs x 20k tok/s
    assert gen == pytest.approx(5.56, abs=0.01) and labels == pytest.approx(9 * gen)
