"""Parameter dictionaries: the functional fast weights that adaptation maps to new fast weights."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

Params = dict[str, Tensor]
ADAM_BETA2 = 0.999  # the decay of Adam's second moments: torch's and TensorFlow's default


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


def momentum_step(params: Params, grads: Params, buffers: Params, lrs: dict[str, Tensor | float], momentum: float,
                  dampening: float = 0.0, weight_decay: float = 0.0) -> tuple[Params, Params]:
    """One step of ``torch.optim.SGD(momentum, dampening, weight_decay)``'s arithmetic on parameter dicts: the new
    parameters and momentum buffers (absent ones: a fresh state, whose first buffer is the gradient, undamped).
    Without momentum, as torch, it keeps no buffer and ignores ``dampening``."""
    decayed = {name: g + weight_decay * params[name] for name, g in grads.items()} if weight_decay else grads
    if momentum:
        decayed = {name: d if name not in buffers else momentum * buffers[name] + (1 - dampening) * d
                   for name, d in decayed.items()}
    return {name: p - lrs[name] * decayed[name] for name, p in params.items()}, (decayed if momentum else {})


def adam_step(params: Params, grads: Params, moments: Params, step: int, lrs: dict[str, Tensor | float],
              beta2: float = ADAM_BETA2, eps: float = 1e-8) -> tuple[Params, Params]:
    """One step of Adam with ``beta1 = 0`` (the first moment is the gradient), ``torch.optim.Adam(betas=(0, beta2))``'s
    arithmetic on parameter dicts: the new parameters and second moments (absent ones are zero, a fresh state).
    ``step`` counts from 0."""
    moments = {name: beta2 * moments.get(name, 0.0) + (1 - beta2) * g * g for name, g in grads.items()}
    correction = math.sqrt(1 - beta2 ** (step + 1))
    new = {name: p - lrs[name] * grads[name] / (moments[name].sqrt() / correction + eps) for name, p in params.items()}
    return new, moments


def state_digest(module: nn.Module) -> str:
    """A SHA-256 digest of ``module``'s state (every parameter and buffer, by name and bytes): equal exactly when
    the weights are, which tells whether something computed from a model still belongs to it."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
