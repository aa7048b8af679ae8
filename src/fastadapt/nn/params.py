"""Parameter dictionaries: the functional fast weights that adaptation maps to new fast weights."""

from __future__ import annotations

from torch import Tensor, nn

Params = dict[str, Tensor]


def parameter_dict(module: nn.Module, prefix: str = "") -> Params:
    """The trainable parameters of ``module`` as ``{name: tensor}`` (names prefixed by ``prefix``)."""
    return {prefix + name: p for name, p in module.named_parameters() if p.requires_grad}


def detach_params(params: Params) -> Params:
    """The same values with no autograd history."""
    return {name: p.detach() for name, p in params.items()}


def sgd_step(params: Params, grads: Params, lrs: dict[str, Tensor | float]) -> Params:
    """One gradient step ``p - lr * g`` with a learning rate per parameter name."""
    return {name: p - lrs[name] * grads[name] for name, p in params.items()}
