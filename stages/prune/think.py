"""Think@n (arXiv 2602.13517): keep the samples that think deepest early, finish only those.

All `n` samples are generated for `prefix_tokens` tokens (50 in the paper); each prefix's
deep-thinking ratio (`stages.logit_lens`: the share of tokens that settle only in the last
layers) is computed under the generating model's weights with transformers (vLLM does not expose
hidden states), and the top `eta` share is continued to the end; the others are pruned. A sample
that finishes within the prefix is kept like the others if it ranks high enough.
"""

from __future__ import annotations

from collections.abc import Sequence

from stages.engine import SamplingConfig
from stages.logit_lens import DepthConfig, deep_thinking_ratio, load_model
from stages.prune.chunked import GenerateFn, Partial, advance, run_to_end, sub_seed
from stages.prune.confidence import keep_top
from stages.prune.outcome import Outcome, Pruned

_LOADED: dict[str, tuple] = {}  # model name -> (model, tokenizer): loaded once per process


def loaded_model(name: str, device: str = "auto"):
    if name not in _LOADED:
        _LOADED[name] = load_model(name, device)
    return _LOADED[name]


def prefix_ratio(loaded, p: Partial, cfg) -> float:
    depth = DepthConfig(threshold=cfg.depth_threshold, depth_fraction=cfg.depth_fraction)
    model, tok = loaded
    prompt_ids = tok(p.prompt, add_special_tokens=False).input_ids
    return deep_thinking_ratio(model, prompt_ids, p.sample.token_ids, depth)


def run(
    cfg,
    generate: GenerateFn,
    prompts: Sequence[str],
    seeds: Sequence[int],
    sampling: SamplingConfig,
    model: str,
):
    n = sampling.n
    traces = [[Partial(prompt, sub_seed(seed, i), index=i) for i in range(n)] for prompt, seed in zip(prompts, seeds)]
    advance(generate, [p for ps in traces for p in ps], sampling, cfg.prefix_tokens)
    loaded = loaded_model(model, cfg.device)
    outcomes, going = [], []
    for ps in traces:
        out = Outcome()
        ok = [p for p in ps if p.sample is not None]
        out.pruned += [
            Pruned(p.index, None, "generation_error", p.error or "no samples") for p in ps if p.sample is None
        ]
        ratios = [prefix_ratio(loaded, p, cfg) for p in ok]
        keep = set(keep_top(ratios, cfg.eta))
        for i, (p, r) in enumerate(zip(ok, ratios)):
            if i in keep:
                going.append(p)
            else:
                detail = f"deep-thinking ratio {r:.4f} of its {p.tokens}-token prefix outside the top {cfg.eta:.0%}"
                out.pruned.append(Pruned(p.index, p.sample, "pruned:think_at_n", detail))
        outcomes.append(out)
    run_to_end(generate, going, sampling)
    kept = {id(p) for p in going}
    for ps, out in zip(traces, outcomes):
        for p in ps:
            if id(p) in kept and p.sample is not None:
                out.kept.append((p.index, p.sample))
                out.weights.append(1.0)  # the paper votes the kept samples unweighted
    return outcomes
