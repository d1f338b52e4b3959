"""CASPO-style step pairs: under one shared prefix, a correct next step over an incorrect one.

Independent traces rarely share long prefixes, so the main source is next-step sampling: at a
prefix (the steps before a trace's first error, or a random cut of a correct trace) several
candidate next steps are drawn from the generator, stopped at the step delimiter, and labeled
with Monte-Carlo rollouts (plus the symbolic checker where it has something to check). Sibling
traces that happen to share a prefix add pairs for free. Priority goes to the two failure modes
CASPO targets: confident-wrong rejected steps and low-confidence correct chosen steps.

With `source: rollouts` the candidates come from the label stage's MC rollouts instead (the
`branches` column): a binary-search rollout from a prefix is a sampled next step whose outcome
the labels already paid for, so no second sampling pass is spent. One rollout that reaches the
answer shows its first step's MC value is above 0 (today's chosen-side test, from one sample
instead of k); one that misses says nothing about its first step (it may fail later), so a missed
rollout is a rejected candidate only where the symbolic checker finds its first step wrong, and
the main rejected side is the trace's own step at its consensus first error. The tree's root is
the prompt, and its rollouts are the trace's siblings: where a first step is wrong, binary search
never rolls out from before it, and the siblings' first steps are the candidates there.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from itertools import combinations
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from schemas.labels import KEPT
from stages.arithmetic.claims import check_step
from stages.engine import Engine, SamplingConfig
from stages.pairs.common import by_problem, make_pair
from stages.rollouts import RolloutConfig, rollout_values
from stages.segment import step_prefix


class NextStepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidates: int = 6  # next steps sampled per prefix
    max_tokens: int = 64
    temperature: float = 1.0
    stop: list[str] = ["\n\n"]  # the step delimiter of the default (paragraph) segmentation
    seed: int = 0
    pairs_per_prefix: int = 2
    # Branch points per problem: pairs past the stage's per-problem cap (8 = 4 x 2) are dropped
    # anyway, so sampling and rolling out more prefixes than that only spends tokens.
    prefixes_per_problem: int = 4
    # sample: candidates drawn and rolled out here; rollouts: the label stage's rollouts (free)
    source: Literal["sample", "rollouts"] = "sample"


def _has_error(trace: dict) -> bool:
    """The consensus located a first error in `trace`."""
    return trace["first_error"] is not None and trace["first_error"] >= 0


def _cut(trace: dict) -> int:
    """Where to branch: before the first error, else a stable pseudo-random step."""
    if _has_error(trace):
        return trace["first_error"]
    h = int(hashlib.sha256(trace["trace_id"].encode()).hexdigest()[:8], 16)
    return h % len(trace["steps"])


def _branch_traces(traces: list[dict], per_problem: int) -> list[dict]:
    """Traces to branch from: the consensus-trusted ones (agreed or resolved), at most `per_problem` per problem,
    those with a located first error first (their prefixes end where the model went wrong, the
    confident-wrong steps CASPO targets), then by trace id (stable across re-runs)."""
    trusted = [t for t in traces if t["consensus"] in KEPT and t["steps"]]
    chosen = []
    for group in by_problem(trusted).values():
        group.sort(key=lambda t: (not _has_error(t), t["trace_id"]))
        chosen += group[:per_problem]
    return chosen


def _candidate(text: str, conf: float | None, ok: bool, value: float, origin: str) -> dict:
    return {"text": text, "conf": conf, "ok": ok, "value": value, "origin": origin}


def _pairs_at(trace: dict, i: int, prefix: str, cands: list[dict], per_prefix: int) -> list[dict | None]:
    right = sorted((c for c in cands if c["ok"]), key=lambda c: c["conf"] if c["conf"] is not None else 0.0)
    wrong = sorted((c for c in cands if not c["ok"]), key=lambda c: -(c["conf"] if c["conf"] is not None else -1e9))
    out = []
    for c, r in list(zip(right, wrong))[:per_prefix]:
        out.append(
            make_pair(
                "step",
                "next_step_sampling",
                trace,
                prefix[len(trace["prompt"]) :],
                c["text"],
                r["text"],
                c["conf"],
                r["conf"],
                c["value"] - r["value"],
                {
                    "trace": trace["trace_id"],
                    "step": i,
                    "chosen": {k: c[k] for k in ("origin", "value")},
                    "rejected": {k: r[k] for k in ("origin", "value")},
                },
            )
        )
    return out


def _own(trace: dict, i: int, prefix: str, sep: str) -> dict:
    """The trace's own step `i` after `prefix`, as a candidate labeled by the consensus."""
    step = trace["steps"][i]
    own_text = trace["completion"][len(prefix) - len(trace["prompt"]) : trace["thinking_start"] + step["char_end"]]
    return _candidate(
        own_text.removesuffix(sep) if sep else own_text,
        step["mean_logprob"],
        bool(step["label"]),
        1.0 if step["label"] else 0.0,
        "trace",
    )


def branch_pairs(traces: list[dict], cfg: NextStepConfig) -> list[dict | None]:
    """Pairs from the label stage's rollouts (`branches`) and the tree's root, the prompt (whose
    rollouts are the trace's siblings): at each prefix some rollout started from, the trace's own
    next step (labeled by the consensus) and the rollouts' first steps. Costs no tokens: every
    trusted trace takes part, errors first."""
    sep = cfg.stop[0] if cfg.stop else ""
    roots = _root_branches(traces)
    pairs: list[dict | None] = []
    for t in _branch_traces(traces, len(traces)):
        at: dict[int, list[dict]] = defaultdict(list)
        for b in roots[t["trace_id"]] + (t["branches"] or []):
            at[b["after"]].append(b)
        for a in sorted(at):
            i = a + 1
            if i >= len(t["steps"]) or t["steps"][i]["label"] is None:
                continue
            prefix = step_prefix(t, a)
            cands = [_own(t, i, prefix, sep)]
            for b in at[a]:
                text = b["text"].removesuffix(sep) if sep else b["text"]
                wrong = check_step(text).verdict == "wrong"
                if text.strip() and (b["reached"] or wrong):  # a plain miss says nothing of its first step
                    cands.append(
                        _candidate(text, b["confidence"], b["reached"] and not wrong, float(b["reached"]), "rollout")
                    )
            pairs += _pairs_at(t, i, prefix, cands, cfg.pairs_per_prefix)
    return pairs


def _root_branches(traces: list[dict]) -> dict[str, list[dict]]:
    """Per trace, the branches at its root: generation drew n rollouts from each prompt, so each
    sibling that opens its thinking the same way is a first step with a known outcome (its final
    answer). Binary search never rolls out from the prompt, where a first-step error branches."""
    out: dict[str, list[dict]] = {}
    for group in by_problem(t for t in traces if t["steps"]).values():
        for t in group:
            prefix = step_prefix(t, -1)
            out[t["trace_id"]] = [
                {
                    "after": -1,
                    "text": s["completion"][
                        len(prefix) - len(s["prompt"]) : s["thinking_start"] + s["steps"][0]["char_end"]
                    ],
                    "reached": bool(s.get("final_correct")),
                    "confidence": s["steps"][0]["mean_logprob"],
                }
                for s in group
                if s is not t and step_prefix(s, -1) == prefix
            ]
    return out


def next_step_pairs(
    engine: Engine, traces: list[dict], cfg: NextStepConfig, rollouts: RolloutConfig
) -> tuple[list[dict | None], int, int]:
    """Pairs from candidate next steps; returns the pairs and the tokens generated for them: to
    sample the candidates, and to roll them out (both 0 with `source: rollouts`)."""
    if cfg.source == "rollouts":
        return branch_pairs(traces, cfg), 0, 0
    trusted = _branch_traces(traces, cfg.prefixes_per_problem)
    cuts = [(t, _cut(t)) for t in trusted]
    prefixes = [step_prefix(t, i - 1) for t, i in cuts]
    sampling = SamplingConfig(
        n=cfg.candidates,
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        stop=cfg.stop,
        seed=cfg.seed,
        logprobs=1,
    )
    gens = engine.generate(prefixes, sampling) if prefixes else []
    tokens = sum(len(s.offsets) for g in gens for s in g.samples)
    sep = cfg.stop[0] if cfg.stop else ""
    items, owners = [], []
    for (t, _), prefix, gen in zip(cuts, prefixes, gens):
        for s in gen.samples:
            if s.text.strip():
                items.append((t, prefix + s.text + sep))
                owners.append((t["trace_id"], s.text, float(np.mean(s.logprobs)) if s.logprobs else None))
    values = rollout_values(engine, rollouts, items)
    rollout_tokens = sum(r.tokens for r in values)
    cands: dict[str, list[dict]] = {t["trace_id"]: [] for t in trusted}
    for (tid, text, conf), r in zip(owners, values):
        ok = r.value is not None and r.value > 0 and check_step(text).verdict != "wrong"
        cands[tid].append(_candidate(text, conf, ok, r.value or 0.0, "sampled"))
    pairs: list[dict | None] = []
    for (t, i), prefix in zip(cuts, prefixes):
        pairs += _pairs_at(t, i, prefix, [_own(t, i, prefix, sep)] + cands[t["trace_id"]], cfg.pairs_per_prefix)
    return pairs, tokens, rollout_tokens


def sibling_pairs(traces: list[dict]) -> list[dict | None]:
    """Traces of one problem whose completions agree up to a step boundary and then diverge,
    one with a correct next step and the other with a wrong one."""
    pairs: list[dict | None] = []
    for group in by_problem(t for t in traces if t["consensus"] in KEPT).values():
        for a, b in combinations(sorted(group, key=lambda t: t["trace_id"]), 2):
            for i in range(min(len(a["steps"]), len(b["steps"]))):
                pa, pb = step_prefix(a, i - 1), step_prefix(b, i - 1)
                if pa != pb:
                    break
                la, lb = a["steps"][i]["label"], b["steps"][i]["label"]
                if la is None or lb is None or la == lb:
                    continue
                good, bad = (a, b) if la else (b, a)
                text = {
                    id(t): t["completion"][len(pa) - len(t["prompt"]) : t["thinking_start"] + t["steps"][i]["char_end"]]
                    for t in (good, bad)
                }
                pairs.append(
                    make_pair(
                        "step",
                        "sibling_traces",
                        good,
                        pa[len(good["prompt"]) :],
                        text[id(good)],
                        text[id(bad)],
                        good["steps"][i]["mean_logprob"],
                        bad["steps"][i]["mean_logprob"],
                        1.0,
                        {"chosen_trace": good["trace_id"], "rejected_trace": bad["trace_id"], "step": i},
                    )
                )
                break
    return pairs
