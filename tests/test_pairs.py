"""Pairs, frontier and the published configs of the demo flow run (real tiny reasoner)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from datasets import load_dataset

from flows.pipeline import PIPELINE
from schemas import CONFIGS, FRONTIER, LABELED_TRACES, PAIRS
from stages.pairs.common import by_problem
from stages.pairs.fidelity_pairs import faithful, fidelity_pairs, unfaithful_reason
from stages.shards import read_table, shard_paths

pytestmark = pytest.mark.vllm


def rows(folder, features):
    return pa.concat_tables([read_table(p, features) for p in shard_paths(folder)]).to_pylist()


def fidelity_eligible(labeled: list[dict]) -> bool:
    """A problem with both a faithful and an unfaithful trace: what a fidelity pair needs."""
    groups = by_problem(labeled).values()
    return any(any(map(faithful, g)) and any(map(unfaithful_reason, g)) for g in groups)


def test_every_pair_kind_is_built_with_a_real_preference(demo_run):
    pairs = rows(PIPELINE.path("pairs", demo_run[0]), PAIRS)
    kinds = {k for p in pairs for k in json.loads(p["provenance"])["kinds"]}  # a pair two kinds made is one row
    # fidelity pairs need an unfaithful trace beside a faithful one; 48 sampled traces may have none
    eligible = fidelity_eligible(rows(PIPELINE.path("label", demo_run[0]), LABELED_TRACES))
    assert kinds == {"step", "trace"} | ({"fidelity"} if eligible else set()), (kinds, eligible)
    assert len({p["pair_id"] for p in pairs}) == len(pairs)
    assert len({(p["problem_id"], p["prefix"], p["chosen"], p["rejected"]) for p in pairs}) == len(pairs)
    for p in pairs:
        assert p["chosen"].strip() != p["rejected"].strip()
        assert p["margin"] >= 0 and json.loads(p["provenance"])
        if p["kind"] != "step":
            assert p["prefix"] == ""
    per_problem: dict = {}
    for p in pairs:
        per_problem[(p["problem_id"], p["kind"])] = per_problem.get((p["problem_id"], p["kind"]), 0) + 1
    assert max(per_problem.values()) <= demo_run[2].pairs.max_pairs_per_problem


def test_step_pairs_share_their_prefix_exactly(demo_run):
    dataset = demo_run[1]["stages"]["publish"]["path"]
    dpo = load_dataset(dataset, "dpo", split="train")
    pairs = {p["pair_id"]: p for p in rows(PIPELINE.path("pairs", demo_run[0]), PAIRS)}
    steps = [r for r in dpo if r["kind"] == "step"]
    assert steps
    for r in steps:
        prefix = pairs[r["pair_id"]]["prefix"]
        chosen, rejected = r["chosen"][0]["content"], r["rejected"][0]["content"]
        assert chosen.startswith(prefix) and rejected.startswith(prefix) and chosen != rejected
        assert r["prompt"] == [{"role": "user", "content": pairs[r["pair_id"]]["problem"]}]


def test_frontier_records_every_drop_with_its_reason(demo_run):
    frontier = rows(PIPELINE.path("frontier", demo_run[0]), FRONTIER)
    reasons = {f["drop_reason"] for f in frontier if not f["keep"]}
    assert reasons <= {"pass_rate_too_low", "pass_rate_too_high", "ifd_too_high"}
    assert all(f["drop_reason"] == "" for f in frontier if f["keep"])
    lo, hi = demo_run[2].frontier.pass_rate_band
    for f in frontier:
        assert (f["drop_reason"] == "pass_rate_too_low") == (f["pass_rate"] < lo)
        assert (f["drop_reason"] == "pass_rate_too_high") == (f["pass_rate"] > hi)
    stats = demo_run[1]["stages"]["frontier"]
    for reason in reasons:
        assert stats[f"dropped_{reason}"] == sum(f["drop_reason"] == reason for f in frontier)


def test_published_configs_load_by_path_with_declared_features(demo_run):
    dataset = demo_run[1]["stages"]["publish"]["path"]
    for name, features in CONFIGS.items():
        ds = load_dataset(dataset, name, split="train")
        assert ds.features == features, name
    prm = load_dataset(dataset, "prm", split="train")
    assert len(prm) > 0 and all(isinstance(x, bool) for r in prm for x in r["labels"])


def test_fidelity_pairs_prefer_the_faithful_trace_of_the_same_problem(demo_run):
    """On the demo's real labeled traces: make one faithful trace misaligned (its thinking concluded
    another answer) and it becomes the rejected side of a fidelity pair against a faithful sibling."""
    labeled = rows(PIPELINE.path("label", demo_run[0]), LABELED_TRACES)
    group = next(
        g for g in by_problem(labeled).values() if sum(map(faithful, g)) >= 2 and not any(map(unfaithful_reason, g))
    )
    victim = sorted((t for t in group if faithful(t)), key=lambda t: t["trace_id"])[-1]
    victim = {**victim, "thinking_answer_agrees": False, "completion": victim["completion"] + " (misaligned)"}
    group = [victim if t["trace_id"] == victim["trace_id"] else t for t in group]
    pairs = [p for p in fidelity_pairs(group) if p is not None]
    assert len(pairs) == 1, pairs
    provenance = json.loads(pairs[0]["provenance"])
    assert provenance["rejected_trace"] == victim["trace_id"] and provenance["rejected_reason"] == "misaligned"
    assert provenance["chosen_trace"] != victim["trace_id"] and faithful(
        next(t for t in group if t["trace_id"] == provenance["chosen_trace"])
    )
    assert pairs[0]["rejected"] == victim["completion"]
