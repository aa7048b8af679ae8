"""Batch normalization on batch statistics, safe for second-order gradients under ``vmap``.

MAML normalizes with the statistics of the batch at hand, at training and at test time, so the
layer keeps no running state that adaptation or ``vmap`` would have to mutate.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_ELEMENTARY = contextvars.ContextVar("fastadapt_elementary_batch_norm", default=False)


@contextlib.contextmanager
def elementary_batch_norm() -> Iterator[None]:
    """Compute batch norm from elementary ops inside this block.

    PyTorch 2.13 gives wrong second-order gradients for ``F.batch_norm`` in training mode under
    ``torch.func.vmap`` (7e-3 off in float64, see ``tests/nn/test_batchnorm.py``); the same
    normalization written as mean/var arithmetic is exact. Outside ``vmap`` the fused kernel is
    right and three times faster on a CPU, so only the vmapped path asks for elementary ops.
    """
    token = _ELEMENTARY.set(True)
    try:
        yield
    finally:
        _ELEMENTARY.reset(token)


def batch_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalize ``x`` over every dimension but the channel one (dim 1), then scale and shift."""
    if not _ELEMENTARY.get():
        return F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    dims = (0, *range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dims, keepdim=True)
    return centered * torch.rsqrt(var + eps) * weight.view(shape) + bias.view(shape)


class BatchNorm(nn.Module):
    """Batch normalization that always uses the current batch's statistics (no running state)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return batch_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}"
