"""Mini-batches of a support set, drawn from the task itself: the same in a per-task loop and under vmap.

Reptile's inner loop (runs of ``batch`` examples across passes) and Chen et al.'s fine-tuning (each pass in
batches, the last one short) both take their examples from fresh shuffles of the support set, seeded by the
task's own bits (``task_key``) through a counter-based hash: pure tensor arithmetic, so a resumed run draws the
same order bit for bit and vmap draws per task what the loop draws.
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK = 0xFFFFFFFF  # hashes are 32-bit values held in int64, whose products with 31-bit multipliers never overflow
_INTEGERS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _mix(x: Tensor) -> Tensor:
    """A 32-bit integer hash of each element of an int64 tensor (xorshift-multiply rounds)."""
    for multiplier in (0x7FEB352D, 0x2C1B3C6D):
        x = ((x ^ (x >> 16)) * multiplier) & _MASK
    return x ^ (x >> 16)


def task_key(x: Tensor) -> Tensor:
    """A 32-bit key of a tensor's bits: the seed of a task's mini-batches.

    An integer sum, so the same bits give the same key in a per-task loop and under ``torch.func.vmap``.
    """
    bits = x.detach().reshape(-1).view(_INTEGERS[x.element_size()]).to(torch.int64)
    return _mix(((bits ^ (bits >> 32)) & _MASK).sum() & _MASK)


def shuffled_passes(key: Tensor, size: int, passes: int) -> Tensor:
    """``[passes, size]``: each row a fresh shuffle of ``range(size)``, drawn from ``key`` (``task_key``)."""
    keys = _mix(_mix(torch.arange(passes * size, device=key.device)) ^ key)
    return keys.view(passes, size).argsort(dim=1, stable=True)


def minibatch_order(key: Tensor, size: int, batch: int, steps: int) -> Tensor:
    """``[steps, batch]`` indices into ``range(size)``: consecutive runs of ``batch`` from passes over the examples,
    each pass a fresh shuffle (so a batch may span two passes), as the official Reptile code's ``_mini_batches``."""
    passes = -(-steps * batch // size)
    return shuffled_passes(key, size, passes).flatten()[: steps * batch].view(steps, batch)


def epoch_batches(key: Tensor, size: int, batch: int, steps: int) -> list[Tensor]:
    """The indices of ``steps`` mini-batches: each pass over the examples a fresh shuffle cut into batches of
    ``batch``, the last of a pass shorter when ``batch`` does not divide ``size`` (Chen et al.'s fine-tuning)."""
    per_pass = -(-size // batch)
    order = shuffled_passes(key, size, -(-steps // per_pass))
    starts = range(0, size, batch)
    return [order[p, start:start + batch] for p in range(len(order)) for start in starts][:steps]
