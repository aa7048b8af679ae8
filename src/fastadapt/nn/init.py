"""How a built-in backbone's weights start: PyTorch's defaults, or the initializations of the papers' code, which a
reproduction follows where the paper is silent and its code decides."""

from __future__ import annotations

from typing import Literal, get_args

from torch import nn

from fastadapt.errors import ConfigError

Init = Literal["torch", "glorot", "maml"]
INITS: tuple[str, ...] = get_args(Init)
MAML_MLP_STD = 0.01  # the MAML code's construct_fc_weights: tf.truncated_normal(stddev=0.01)


def initialize(model: nn.Module, scheme: str) -> nn.Module:
    """Draw the weights of ``model``'s convolutions and linear layers anew under ``scheme`` (from torch's random
    stream, as building the model does) and return it.

    ``torch`` keeps PyTorch's defaults. ``glorot`` gives Glorot-uniform weights and zero biases, TensorFlow's default
    (Reptile's code, MAML's miniImageNet network, MAML++'s layers). ``maml`` is the MAML code's Omniglot and sinusoid
    networks: without convolutions, weights from a normal of std 0.01 cut at two deviations and zero biases; with
    them, Glorot-uniform convolutions, zero biases and an output layer (``model.head``) of N(0, 1) weights.
    """
    if scheme not in INITS:
        raise ConfigError(f"model.init must be one of {INITS}, got {scheme!r}")
    if scheme == "torch":
        return model
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    convolutional = any(isinstance(m, nn.Conv2d) for m in layers)
    head = getattr(model, "head", None)
    for layer in layers:
        if scheme == "maml" and not convolutional:
            nn.init.trunc_normal_(layer.weight, std=MAML_MLP_STD, a=-2 * MAML_MLP_STD, b=2 * MAML_MLP_STD)
        elif scheme == "maml" and layer is head:
            nn.init.normal_(layer.weight)
        else:
            nn.init.xavier_uniform_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return model
