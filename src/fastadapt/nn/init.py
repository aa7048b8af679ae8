"""How a built-in backbone's weights start: PyTorch's defaults, or the initializations of the papers' code, which a
reproduction follows where the paper is silent and its code decides."""

from __future__ import annotations

from typing import Literal, get_args

from torch import nn

from fastadapt.errors import ConfigError

Init = Literal["torch", "glorot", "maml", "relationnet"]
INITS: tuple[str, ...] = get_args(Init)
MAML_MLP_STD = 0.01  # the MAML code's construct_fc_weights: tf.truncated_normal(stddev=0.01)
RELATIONNET_LINEAR_STD = 0.01  # the Relation Networks code's weights_init: Linear weights normal_(0, 0.01), biases 1


def initialize(model: nn.Module, scheme: str) -> nn.Module:
    """Draw the weights of ``model``'s convolutions and linear layers anew under ``scheme`` (from torch's random
    stream, as building the model does) and return it.

    ``torch`` keeps PyTorch's defaults. ``glorot`` gives Glorot-uniform weights and zero biases, TensorFlow's default
    (Reptile's code, MAML's miniImageNet network, MAML++'s layers). ``maml`` is the MAML code's Omniglot and sinusoid
    networks: without convolutions, weights from a normal of std 0.01 cut at two deviations and zero biases; with
    them, Glorot-uniform convolutions, zero biases and an output layer (``model.head``) of N(0, 1) weights.
    ``relationnet`` is the Relation Networks code's: convolutions from N(0, 2 / (9 x out channels)) (He's normal,
    fan-out) with zero biases, linear layers from N(0, 0.01) with biases of one.
    """
    if scheme not in INITS:
        raise ConfigError(f"model.init must be one of {INITS}, got {scheme!r}")
    if scheme == "torch":
        return model
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    convolutional = any(isinstance(m, nn.Conv2d) for m in layers)
    head = getattr(model, "head", None)
    for layer in layers:
        bias = _draw(layer, scheme, convolutional, layer is head)
        if layer.bias is not None:
            nn.init.constant_(layer.bias, bias)
    return model


def _draw(layer: nn.Conv2d | nn.Linear, scheme: str, convolutional: bool, is_head: bool) -> float:
    """Draw ``layer``'s weights under ``scheme`` (in a network with convolutions or without); return the value its
    bias starts at."""
    if scheme == "relationnet":
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            return 0.0
        nn.init.normal_(layer.weight, std=RELATIONNET_LINEAR_STD)
        return 1.0
    if scheme == "maml" and not convolutional:
        nn.init.trunc_normal_(layer.weight, std=MAML_MLP_STD, a=-2 * MAML_MLP_STD, b=2 * MAML_MLP_STD)
    elif scheme == "maml" and is_head:
        nn.init.normal_(layer.weight)
    else:
        nn.init.xavier_uniform_(layer.weight)
    return 0.0
