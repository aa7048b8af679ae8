"""Batch normalization on batch statistics: the layer of fastadapt's own backbones.

MAML normalizes with the statistics of the batch at hand, at training and at test time, so the
layer keeps no running state that adaptation or ``vmap`` would have to mutate. It computes what a
standard ``nn.BatchNorm2d`` computes under fastadapt's batch-norm policy (``fastadapt.nn.functional``),
for inputs of any number of dimensions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BatchNorm(nn.Module):
    """Batch normalization that always uses the current batch's statistics (no running state); ``scale=False``
    learns no scale, only the shift (``tf.contrib.layers.batch_norm``'s default, MAML's code)."""

    weight: nn.Parameter | None
    unit: Tensor

    def __init__(self, channels: int, eps: float = 1e-5, scale: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if scale else None
        self.bias = nn.Parameter(torch.zeros(channels))
        if not scale:  # a constant one instead: torch's second derivative of batch_norm fails on weight=None
            self.register_buffer("unit", torch.ones(channels), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight if self.weight is not None else self.unit
        return F.batch_norm(x, None, None, scale, self.bias, training=True, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.bias.numel()}, eps={self.eps}, scale={self.weight is not None}"


def is_batch_norm(layer: nn.Module) -> bool:
    """Whether ``layer`` is a batch-norm layer, PyTorch's or fastadapt's own."""
    return isinstance(layer, BatchNorm | nn.modules.batchnorm._BatchNorm)


def batch_norm_parameters(module: nn.Module) -> dict[str, nn.Parameter]:
    """The trainable weights and biases of every batch-norm layer of ``module`` (standard and fastadapt's own), by
    their names in ``module``: what MAML++ gives a copy per inner step."""
    found: dict[str, nn.Parameter] = {}
    for prefix, layer in module.named_modules():
        if is_batch_norm(layer):
            dot = f"{prefix}." if prefix else ""
            found.update({dot + name: p for name, p in layer.named_parameters(recurse=False) if p.requires_grad})
    return found
