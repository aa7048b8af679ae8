"""The initializations of the papers' code: each scheme's distributions, checked on the networks it is for."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fastadapt.config import build_config
from fastadapt.config.build import build_learner
from fastadapt.errors import ConfigError
from fastadapt.nn.backbones import MLP, Conv4
from fastadapt.nn.init import initialize


def _linear_and_conv(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_torch_keeps_pytorchs_defaults() -> None:
    torch.manual_seed(0)
    expected = MLP(1, 1).state_dict()
    torch.manual_seed(0)
    kept = initialize(MLP(1, 1), "torch").state_dict()
    assert all(torch.equal(kept[name], value) for name, value in expected.items())


def test_glorot_is_tensorflows_default_on_every_layer() -> None:
    """Uniform on +-sqrt(6 / (fan_in + fan_out)), fans counted over the kernel as TensorFlow does; zero biases."""
    torch.manual_seed(0)
    model = initialize(Conv4(1, 5, hidden=64, pool="stride", image_size=28), "glorot")
    for layer in _linear_and_conv(model):
        fan_in = layer.weight[0].numel()
        fan_out = layer.weight.shape[0] * layer.weight[0, 0].numel()
        bound = math.sqrt(6 / (fan_in + fan_out))
        weights = layer.weight.detach()
        assert weights.abs().max() <= bound and weights.abs().max() > 0.9 * bound
        assert weights.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15)
        assert layer.bias is not None and not layer.bias.any()


def test_maml_is_the_maml_codes_mlp_and_conv_network() -> None:
    """construct_fc_weights: truncated_normal(stddev=0.01) (cut at two deviations), zero biases; construct_conv_weights
    (Omniglot): Xavier convolutions, zero biases, output weights random_normal (std 1)."""
    torch.manual_seed(0)
    mlp = initialize(MLP(1, 1, hidden=(40, 40)), "maml")
    for layer in _linear_and_conv(mlp):
        assert layer.weight.abs().max() <= 0.02 and not layer.bias.any()
    hidden = mlp.body[2].weight.detach()  # 1600 draws: the std of a normal cut at 2 deviations, 0.88 of 0.01
    assert hidden.std().item() == pytest.approx(0.0088, rel=0.1)
    conv = initialize(Conv4(1, 5, hidden=64, pool="stride", image_size=28), "maml")
    assert conv.head is not None and conv.head.weight.std().item() == pytest.approx(1.0, rel=0.15)
    first = conv.body[0]
    assert isinstance(first, nn.Conv2d) and first.weight.abs().max() <= math.sqrt(6 / (9 + 9 * 64))
    assert all(not layer.bias.any() for layer in _linear_and_conv(conv))


def test_the_config_key_reaches_the_model_and_a_bad_one_is_refused() -> None:
    torch.manual_seed(0)
    learner = build_learner(build_config("maml-sinusoid", ["model.init=glorot"]))  # the preset's own is maml
    weights = [p for name, p in learner.named_parameters() if name.endswith("weight")]
    assert max(w.abs().max().item() for w in weights) > 0.1  # glorot's, not maml's 0.02 bound
    assert all(not p.any() for name, p in learner.named_parameters() if name.endswith("bias"))
    with pytest.raises(ConfigError, match="init"):
        build_config("maml-sinusoid", ["model.init=xavier"])


def test_relationnet_is_the_relation_network_codes_on_both_networks() -> None:
    """weights_init: convolutions normal_(0, sqrt(2 / (k * k * out_channels))) with zero biases, linear layers
    normal_(0, 0.01) with biases of one; the preset draws the encoder and the relation module so."""
    torch.manual_seed(0)
    learner = build_learner(build_config("relationnet-omniglot-5w1s", []))
    convs = [m for m in learner.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in learner.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 6 and len(linears) == 2  # 4 in the encoder, 2 in the relation module; its fc layers
    for conv in convs[1:]:  # 64 x 64 x 9 draws each
        std = math.sqrt(2 / (9 * conv.out_channels))
        assert conv.weight.std().item() == pytest.approx(std, rel=0.05) and not conv.bias.any()
    assert linears[0].weight.std().item() == pytest.approx(0.01, rel=0.2)
    assert all(bool((layer.bias == 1).all()) for layer in linears)
