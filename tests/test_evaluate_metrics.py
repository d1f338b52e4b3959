"""Evaluation metrics against hand-computed values, and the deep-thinking ratio on constructed models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from stages.logit_lens import DepthConfig, deep_thinking_ratio, jensen_shannon, settling_layers
from stages.score.metrics import (
    auroc,
    bootstrap_interval,
    expected_calibration_error,
    majority_correct,
    pass_at_k,
)


def test_pass_at_k_matches_its_closed_form_on_hand_cases():
    assert pass_at_k(4, 0, 1) == 0.0 and pass_at_k(4, 4, 2) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)  # pass@1 is the fraction correct
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(5, 2, 3) == pytest.approx(0.9)  # 1 - C(3,3)/C(5,3) = 1 - 1/10
    assert pass_at_k(3, 1, 3) == 1.0  # k = n: right when any sample is
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_majority_vote_counts_answers_not_samples():
    assert majority_correct(["7", "8", "7", None], [True, False, True, False], k=4)
    assert not majority_correct(["8", "8", "7", "7"], [False, False, True, True], k=4)  # a tie: first seen wins
    assert majority_correct(["8", "7", "7", "8"], [False, True, True, False], k=3)  # only the first k vote
    assert not majority_correct([None, None], [False, False], k=2)


def test_auroc_and_ece_on_a_hand_computed_example():
    # positives 0.9, 0.6, 0.4; negatives 0.6, 0.2: pairs won 2 + 0.5 + 2 + 1... = (2 + 1.5 + 1) / 6
    assert auroc([0.9, 0.6, 0.4, 0.6, 0.2], [True, True, True, False, False]) == pytest.approx(4.5 / 6)
    assert auroc([0.1, 0.2], [True, True]) != auroc([0.1, 0.2], [True, True])  # NaN: one class only
    # bins of width 0.5: {0.2, 0.4} accuracy 0.5 vs conf 0.3; {0.8, 1.0} accuracy 1 vs conf 0.9
    assert expected_calibration_error([0.2, 0.4, 0.8, 1.0], [True, False, True, True], bins=2) == pytest.approx(
        0.5 * 0.2 + 0.5 * 0.1
    )
    with pytest.raises(ValueError):
        expected_calibration_error([1.5], [True])


def test_bootstrap_interval_brackets_the_estimate_and_skips_problems_it_does_not_apply_to():
    values = [1.0] * 30 + [0.0] * 10 + [float("nan")] * 5
    est, low, high = bootstrap_interval(values, seed=1)
    assert est == pytest.approx(0.75) and 0.5 < low < est < high < 1.0  # ±1.96 x 0.068 around 0.75
    assert bootstrap_interval([0.5] * 10) == (0.5, 0.5, 0.5)


def _model(vocab: int = 32, layers: int = 4) -> LlamaForCausalLM:
    """A Llama whose blocks add nothing (zero output projections and MLP), embeddings one-hot and
    a final norm that makes every layer's distribution peaked on its argmax."""
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=vocab, intermediate_size=8, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=2, mlp_bias=True, tie_word_embeddings=True,
    )  # fmt: skip
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(vocab) * 0.02)
        model.model.norm.weight.fill_(200.0)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
            layer.mlp.down_proj.bias.zero_()
    return model


def test_jensen_shannon_is_zero_for_equal_and_ln2_for_disjoint_distributions():
    p = torch.log(torch.tensor([1.0, 1e-30]))
    assert jensen_shannon(p, p).item() == pytest.approx(0.0, abs=1e-6)
    assert jensen_shannon(p, p.flip(0)).item() == pytest.approx(math.log(2), abs=1e-6)
    # uniform vs one-hot over 2 tokens: H((3/4, 1/4)) - ln(2) / 2 = 0.2158 nats
    two = torch.stack([torch.log(torch.tensor([0.5, 0.5])), p])[:, None]  # [L=2, T=1, V=2]
    assert jensen_shannon(two[0], two[1]).item() == pytest.approx(0.2158, abs=1e-4)
    assert settling_layers(two, 0.5).tolist() == [1] and settling_layers(two, 0.2).tolist() == [2]


def test_deep_thinking_ratio_is_0_when_the_first_layer_decides_and_1_when_only_the_last_does():
    cfg = DepthConfig()  # g = 0.5, rho = 0.85: with 4 layers, deep means settling at layer 4
    prompt, completion = [3, 5], [7, 2, 9, 4]
    assert deep_thinking_ratio(_model(), prompt, completion, cfg) == 0.0  # layers after the first are identity
    late = _model()
    with torch.no_grad():  # the last block writes token 31's direction over everything: a new prediction
        late.model.layers[-1].mlp.down_proj.bias.copy_(torch.eye(32)[31] * 1000)
    assert deep_thinking_ratio(late, prompt, completion, cfg) == 1.0
    assert np.isnan(deep_thinking_ratio(late, prompt, [], cfg))
