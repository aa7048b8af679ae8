"""Parameter dictionaries: the functional fast weights that adaptation maps to new fast weights."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

Params = dict[str, Tensor]


def parameter_dict(module: nn.Module, prefix: str = "") -> Params:
    """The trainable parameters of ``module`` as ``{name: tensor}`` (names prefixed by ``prefix``)."""
    return {prefix + name: p for name, p in module.named_parameters() if p.requires_grad}


def detach_params(params: Params) -> Params:
    """The same values with no autograd history."""
    return {name: p.detach() for name, p in params.items()}


def flatten(tensors: Iterable[Tensor]) -> Tensor:
    """Every element of ``tensors`` in one vector, in order, differentiably. Like torch's ``parameters_to_vector``,
    which views each tensor and so refuses non-contiguous ones (channels-last weights and their gradients)."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: Tensor, like: Iterable[Tensor]) -> list[Tensor]:
    """Views of ``vector`` shaped as the tensors ``like``: the inverse of ``flatten``, differentiable (torch's
    ``vector_to_parameters`` instead overwrites parameters' data in place, outside autograd)."""
    shapes = [t.shape for t in like]
    pieces = vector.split([shape.numel() for shape in shapes])
    return [piece.view(shape) for piece, shape in zip(pieces, shapes, strict=True)]


def sgd_step(params: Params, grads: Params, lrs: dict[str, Tensor | float]) -> Params:
    """One gradient step ``p - lr * g`` with a learning rate per parameter name."""
    return {name: p - lrs[name] * grads[name] for name, p in params.items()}
