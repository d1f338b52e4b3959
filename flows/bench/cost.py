"""`thoughtmill bench cost`: what labels and pairs cost per trace token, today and with each lever.

One fixed set of tiny-teacher traces (`sample_traces`: 24 eval problems, 8 samples each, seeds
fixed there), every step's truth exact. Each arm runs the label and pairs stages (their own
`process_chunk`, the demo recipe's settings) on the same traces: "today" is the demo recipe with
every lever off, then each lever alone, then the demo recipe as it is. Per arm: tokens generated
per trace by stage part (MC rollouts, judge, dispute resolution, next-step sampling and its
rollouts), their ratio to the trace tokens, the consensus's ProcessBench F1 against exact truth
on the traces it keeps, the kept share (of all traces, and of those whose exact truth has an
error), step pairs per problem and their accuracy against exact truth (chosen step valid and
rejected step invalid), and hours at a stated scale. Information gain (prefill only, no tokens
generated) is off. Arms that repeat a request (the judge's prompts, today's rollouts) get the
first answer again (`Memo`): the tokens are counted as generated, the seconds are not spent twice.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

from flows.bench import TINY_ENGINE
from flows.bench.label import processbench, sample_traces
from flows.bench.rollout_requests import rollout_requests
from flows.pipeline import load_recipe
from schemas.labels import KEPT
from stages.arithmetic.truth import first_error, problem_step_truth
from stages.engine import EngineConfig, Generation
from stages.engine.pool import POOL
from stages.label.stage import Label
from stages.pairs.stage import Pairs

PROBLEMS, SAMPLES = 24, 8  # chosen before any run
OFF = {  # every lever off: the demo recipe as it was before them (its next-step sampling settings too)
    "label.rollouts.adaptive_k": False,
    "label.rollouts.answer_from": "final",
    "label.consensus.resolve": "drop",
    "pairs.next_step": {"source": "sample", "candidates": 6, "max_tokens": 48},
    "pairs.rollouts": {"k": 4, "max_tokens": 300, "answer_from": "final"},
}
ARMS: dict[str, dict | None] = {  # name -> overrides on OFF; None: the demo recipe as it is
    "today (levers off)": {},
    "one rollout tree": {"pairs.next_step": {"source": "rollouts"}},
    "adaptive k": {"label.rollouts.adaptive_k": True},
    "stop at thinking end": {
        "label.rollouts.answer_from": "thinking",
        "pairs.rollouts": {"k": 4, "max_tokens": 300, "answer_from": "thinking"},
    },
    "resolve disputes": {"label.consensus.resolve": "evidence"},
    "demo recipe": None,
}
PARTS = {  # column -> the stages' token figures it sums
    "mc": ("label", "mc_tokens"),
    "judge": ("label", "judge_tokens"),
    "resolve": ("label", "resolve_tokens"),
    "next step": ("pairs", "next_step_tokens"),
    "its rollouts": ("pairs", "next_step_rollout_tokens"),
}
# the target scale: one 8-GPU node, 800k traces of ~4k tokens, a 7B at ~20k tok/s per GPU
SCALE = {"traces": 800_000, "trace_tokens": 4_000, "gpus": 8, "tok_s_per_gpu": 20_000}


class Memo:
    """An engine that answers a request it has seen (prompt, sampling, seed) with the same
    generation: arms share the judge's prompts and today's rollouts, and seeded sampling would
    only recompute them."""

    def __init__(self, engine) -> None:
        self.engine, self.cache = engine, {}

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def generate(self, prompts, sampling, seeds=None) -> list[Generation]:
        given = list(seeds) if seeds else None
        keys = [(p, given[i] if given else None, sampling.model_dump_json()) for i, p in enumerate(prompts)]
        new = [i for i, k in enumerate(keys) if k not in self.cache]
        if new:
            got = self.engine.generate([prompts[i] for i in new], sampling, [given[i] for i in new] if given else None)
            self.cache.update({keys[i]: g for i, g in zip(new, got)})
        return [self.cache[k] for k in keys]


def step_valid(trace: dict, i: int, text: str) -> bool:
    """Exact truth of `text` as step `i` of `trace` (after its steps before `i`)."""
    before = [s["text"] for s in trace["steps"][:i]]
    return problem_step_truth(trace["problem"], [*before, text.replace("</think>", "").strip()])[-1]


def pair_accuracy(pairs: list[dict], by_id: dict[str, dict]) -> float:
    """Share of step pairs whose chosen step is exactly valid and rejected step exactly invalid."""
    right = []
    for p in pairs:
        prov = json.loads(p["provenance"])
        t = by_id[prov.get("trace") or prov["chosen_trace"]]
        right.append(step_valid(t, prov["step"], p["chosen"]) and not step_valid(t, prov["step"], p["rejected"]))
    return sum(right) / len(right) if right else float("nan")


def run_arm(engine, traces: list[dict], overrides: dict | None) -> dict:
    settings = {} if overrides is None else {**OFF, **overrides}
    recipe = load_recipe("demo", {**settings, "label.fidelity.info_gain": False})
    label = Label("-", "-", recipe.label, engines={"completer": engine, "judge": engine})
    pairs = Pairs("-", "-", recipe.pairs, engines={"generator": engine})
    figures = {"label": Counter(), "pairs": Counter()}  # the stages' figures, as a run counts them
    label._chunk_counts, pairs._chunk_counts = figures["label"], figures["pairs"]
    labeled, _ = label.process_chunk(traces)
    made, _ = pairs.process_chunk(labeled)
    truth = [first_error(problem_step_truth(t["problem"], [s["text"] for s in t["steps"]])) for t in labeled]
    kept = [i for i, t in enumerate(labeled) if t["consensus"] in KEPT]
    step = [p for p in made if p["kind"] == "step"]
    n = len(traces)
    return {
        "tokens": {col: figures[stage][key] / n for col, (stage, key) in PARTS.items()},
        **processbench([labeled[i]["first_error"] for i in kept], [truth[i] for i in kept]),
        "kept": len(kept) / n,
        "kept_erroneous": sum(truth[i] >= 0 for i in kept) / max(sum(x >= 0 for x in truth), 1),
        "step_pairs_per_problem": len(step) / len({t["problem_id"] for t in traces}),
        "step_pair_accuracy": pair_accuracy(step, {t["trace_id"]: t for t in labeled}),
    }


def bench_cost(
    problems: int = PROBLEMS, samples: int = SAMPLES, model: str = "tiny:teacher", seeds: tuple[int, int] = (7, 11)
) -> dict:
    """`seeds`: the problems' and the samples' (another pair is another set of traces)."""
    engine = POOL.open(EngineConfig(model=model, **TINY_ENGINE))
    with tempfile.TemporaryDirectory() as tmp:
        traces = [t for t in sample_traces(engine, problems, samples, Path(tmp), *seeds) if t["steps"]]
    memo = Memo(engine)
    arms = {name: run_arm(memo, traces, o) for name, o in ARMS.items()}
    requests = rollout_requests(engine, traces)
    POOL.close()
    trace_tokens = sum(t["thinking_tokens"] + t["answer_tokens"] for t in traces) / len(traces)
    for a in arms.values():
        a["ratio"] = sum(a["tokens"].values()) / trace_tokens
    truth = [first_error(problem_step_truth(t["problem"], [s["text"] for s in t["steps"]])) for t in traces]
    return {
        "model": model,
        "traces": len(traces),
        "erroneous": sum(x >= 0 for x in truth),
        "trace_tokens": trace_tokens,
        "arms": arms,
        "rollout_requests": requests,
    }


def projection(ratio: float, scale: dict = SCALE) -> tuple[float, float]:
    """Hours to generate the corpus and to label and pair it, on `scale`'s GPUs."""
    gen = scale["traces"] * scale["trace_tokens"] / (scale["gpus"] * scale["tok_s_per_gpu"]) / 3600
    return gen, gen * ratio


def main() -> None:
    r = bench_cost()
    print(
        f"{r['model']}: {r['traces']} traces ({PROBLEMS} problems x {SAMPLES}), {r['erroneous']} with an exact "
        f"first error, {r['trace_tokens']:.1f} tokens per trace"
    )
    cols = list(PARTS)
    print("tokens generated per trace (labels: mc, judge, resolve; pairs: next step, its rollouts), and quality:")
    head = " ".join(f"{c:>12}" for c in cols)
    print(f"{'arm':22} {head} {'ratio':>6} {'F1':>6} {'kept':>5} {'kept err':>8} {'pairs/pb':>8} {'pair acc':>8}")
    for name, a in r["arms"].items():
        toks = " ".join(f"{a['tokens'][c]:12.1f}" for c in cols)
        print(
            f"{name:22} {toks} {a['ratio']:6.2f} {a['f1']:6.3f} {a['kept']:5.2f} {a['kept_erroneous']:8.2f} "
            f"{a['step_pairs_per_problem']:8.2f} {a['step_pair_accuracy']:8.2f}"
        )
    s = SCALE
    print(
        f"projection: {s['traces']:,} traces of {s['trace_tokens']:,} tokens on {s['gpus']} GPUs at "
        f"{s['tok_s_per_gpu']:,} tok/s each (labels and pairs at the arm's ratio of the generated tokens)"
    )
    for name, a in r["arms"].items():
        gen, lp = projection(a["ratio"])
        print(f"{name:22} generate {gen:5.1f} h + labels and pairs {lp:5.1f} h = {gen + lp:5.1f} h")
    q = r["rollout_requests"]
    print(
        f"levers bounded, not built (the demo recipe's {q['rollout_tokens']:,} label rollout tokens): shorter "
        f"budgets save at most the tokens cut at max_tokens ({q['capped_share']:.1%}) or past 2x the trace's own "
        f"remaining tokens ({q['past_twice_left_share']:.1%}); the prefix cache served {q['cache_hit_submitted']:.1%} "
        f"of the prompt tokens as the labeler orders requests, {q['cache_hit_shuffled']:.1%} shuffled"
    )
