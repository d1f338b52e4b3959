"""Label stage on real vLLM: rollouts, the teacher judge, consensus and fidelity metrics."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from datasets import load_dataset

from flows.pipeline import PIPELINE
from schemas.labels import LABELED_TRACES
from stages.arithmetic.repair import correction, self_correction
from stages.label.labelers.mc import MonteCarloLabeler
from stages.rollouts import Rolled, RolloutConfig
from stages.shards import read_table, shard_paths
from stages.verification.verify import verify_answer

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def labeled(demo_run):
    root = demo_run[0]
    shards = shard_paths(PIPELINE.path("label", root))
    rows = pa.concat_tables([read_table(p, LABELED_TRACES) for p in shards]).to_pylist()
    return root, rows, demo_run[1]["stages"]["label"]


def test_labeled_traces_load_with_declared_features(labeled):
    root, rows, _ = labeled
    ds = load_dataset("parquet", data_files=str(PIPELINE.path("label", root) / "*.parquet"), split="train")
    assert ds.features == LABELED_TRACES and len(ds) == len(rows) == 48


def test_fidelity_metrics_follow_their_definitions(labeled):
    _, rows, _ = labeled
    for t in rows:
        assert t["final_correct"] == bool(verify_answer(t["gold_answer"], t["final_answer"]))
        assert t["thinking_correct"] == bool(verify_answer(t["gold_answer"], t["thinking_answer"]))
        if t["final_answer"] is None or t["thinking_answer"] is None:
            assert t["thinking_answer_agrees"] is None
        flawed = t["first_error"] is not None and t["first_error"] >= 0
        repaired = self_correction([s["text"] for s in t["steps"]], t["first_error"]) is not None
        assert t["self_corrected"] == (t["final_correct"] and flawed and repaired)
        assert t["rationalized"] == (t["final_correct"] and flawed and not repaired)
        gains = [s["info_gain"] for s in t["steps"]]
        assert all(g is not None and math.isfinite(g) for g in gains)
    assert any(t["final_correct"] for t in rows) and not all(t["final_correct"] for t in rows)
    by_problem: dict[str, list[float]] = {}
    for t in rows:
        if t["final_correct"]:
            by_problem.setdefault(t["problem_id"], []).append(t["overthinking"])
    for ratios in by_problem.values():  # the median correct trace of a problem has ratio 1
        ratios = sorted(ratios)
        mid = len(ratios) // 2
        median = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
        assert median == pytest.approx(1.0)


def test_consensus_keeps_agreement_and_flags_disagreement(labeled):
    _, rows, stats = labeled
    statuses = {t["consensus"] for t in rows}
    assert "agree" in statuses
    for t in rows:
        answered = [t[f"first_error_{k}"] for k in ("mc", "judge", "symbolic")]
        firsts = {f for f in answered if f is not None}  # a labeler with no usable verdict abstains
        if t["consensus"] in ("agree", "resolved"):
            if t["consensus"] == "agree":
                assert sum(f is not None for f in answered) >= 2  # the demo policy's min_sources
                assert firsts == {t["first_error"]}
            else:  # a dispute the demo's `resolve: evidence` decided: the labelers did not agree
                assert len(firsts) > 1 or sum(f is not None for f in answered) < 2, answered
            fe, texts = t["first_error"], [s["text"] for s in t["steps"]]
            carried = [fe < 0 or i < fe for i in range(len(texts))]
            # the demo recipe's after_repair is the default: steps after a repaired slip are correct again
            expected = correction(texts, fe, carried, t["final_correct"], "correct").step_labels
            assert [s["label"] for s in t["steps"]] == expected
        else:
            assert t["first_error"] is None and all(s["label"] is None for s in t["steps"])
        assert t["label_tokens"] > 0
    assert stats["consensus_agree"] == sum(t["consensus"] == "agree" for t in rows)


def test_rollouts_hit_the_prefix_cache_and_binary_search_spends_less(labeled, teacher_engine):
    _, rows, _ = labeled
    wrong = [t for t in rows if not t["final_correct"] and len(t["steps"]) >= 3][:6]
    assert wrong
    before = teacher_engine.cache_stats()
    per_step = MonteCarloLabeler(teacher_engine, RolloutConfig(strategy="per_step", k=4)).label(wrong)
    after = teacher_engine.cache_stats()
    assert after["hits"] - before["hits"] > 0.5 * (after["queries"] - before["queries"])
    binary = MonteCarloLabeler(teacher_engine, RolloutConfig(strategy="binary_search", k=4)).label(wrong)
    assert sum(b.tokens for b in binary) < sum(p.tokens for p in per_step)
    searcher = MonteCarloLabeler(teacher_engine, RolloutConfig(strategy="binary_search"))
    for b, t in zip(binary, wrong):
        visited = [v for v in b.step_values if v is not None]
        bound = sum(math.ceil(math.log2(hi - lo + 1)) for lo, hi in searcher._search_segments(t))
        assert 0 < len(visited) <= bound


def test_binary_search_covers_a_right_trace_only_before_its_last_reflection():
    labeler = MonteCarloLabeler(None, RolloutConfig(strategy="binary_search"))  # type: ignore[arg-type]

    def trace(final: str, *steps: str) -> dict:
        return {"gold_answer": "8", "final_answer": final, "steps": [{"text": s} for s in steps]}

    fixed = trace("8", "14 - 6 = 9", "Wait, 14 - 6 = 8, not 9.", "So the answer is 8.")
    clean = trace("8", "14 - 6 = 8", "So the answer is 8.")
    wrong = trace("9", "14 - 6 = 9", "So the answer is 9.")
    assert labeler._search_segments(fixed) == [(0, 1)]  # the slip before the correction is searched
    assert labeler._search_segments(clean) == []  # a right trace that never reflects costs nothing
    assert labeler._search_segments(wrong) == [(0, 2)]


def test_binary_search_does_not_let_a_reflection_vouch_for_the_slip_it_repaired():
    """MC values 0, >0, 0, 0: a rollout after `Wait, ...` reaches the gold answer although step 0
    is wrong. Searching segment by segment finds step 0; one search over all steps would probe
    step 1, see MC > 0, and call step 2 the first error."""

    class Scripted(MonteCarloLabeler):
        def _values(self, requests):
            return [Rolled(t["mc"][i], 1, []) for t, i in requests]

    steps = ["2 * 2 = 2, now 2 + 5", "Wait, let me check: 2 * 2 = 2. Yes.", "2 + 5 = 7", "So the answer is 7."]
    t = {"gold_answer": "9", "final_answer": "7", "steps": [{"text": s} for s in steps], "mc": [0.0, 0.25, 0.0, 0.0]}
    (label,) = Scripted(None, RolloutConfig(strategy="binary_search")).label([t])  # type: ignore[arg-type]
    assert label.first_error == 0 and label.tokens == 1
    t["mc"] = [0.5, 0.25, 0.0, 0.0]  # the first segment is clean: the next one is searched
    (label,) = Scripted(None, RolloutConfig(strategy="binary_search")).label([t])  # type: ignore[arg-type]
    assert label.first_error == 2 and label.step_values[0] == 0.5
