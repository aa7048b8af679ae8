"""Training-time image augmentation on batches of image tensors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def affine_distortions(
    images: Tensor,
    rotation_deg: float = 10.0,
    shear: float = 0.3,
    scale: tuple[float, float] = (0.8, 1.2),
    shift_px: float = 2.0,
    p: float = 0.5,
) -> Tensor:
    """Koch et al. (2015)'s random affine distortions of images ``[..., C, H, W]``, one per image:
    a rotation in ±``rotation_deg``, shears in ±``shear``, scales in ``scale`` and shifts in
    ±``shift_px`` pixels, each component used with probability ``p``. Edges are extended
    (border padding), so the background stays the background. Uses torch's global random state."""
    shape = images.shape
    flat = images.reshape(-1, *shape[-3:])
    n, device, dtype = flat.shape[0], flat.device, flat.dtype

    def uniform(low: float, high: float, count: int = 1) -> tuple[Tensor, Tensor]:
        value = torch.empty(n, count, device=device, dtype=dtype).uniform_(low, high)
        keep = torch.rand(n, count, device=device) < p
        return value, keep

    angle, use = uniform(-math.radians(rotation_deg), math.radians(rotation_deg))
    angle = (angle * use)[:, 0]
    shears, use = uniform(-shear, shear, 2)
    shears = shears * use
    scales, use = uniform(*scale, 2)
    scales = torch.where(use, scales, torch.ones_like(scales))
    shifts, use = uniform(-shift_px, shift_px, 2)
    shifts = shifts * use * 2 / torch.tensor([shape[-1], shape[-2]], device=device, dtype=dtype)

    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shearing = torch.eye(2, device=device, dtype=dtype).repeat(n, 1, 1)
    shearing[:, 0, 1], shearing[:, 1, 0] = shears[:, 0], shears[:, 1]
    linear = rotation @ shearing @ torch.diag_embed(scales)
    theta = torch.cat([linear, shifts[:, :, None]], dim=2)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    return F.grid_sample(flat, grid, padding_mode="border", align_corners=False).view(shape)


def random_crop_flip(images: Tensor, generator: torch.Generator, padding: int | None = None) -> Tensor:
    """The miniImageNet-family training augmentation: each image ``[..., C, H, W]`` zero-padded by
    ``padding`` pixels (default a tenth of its height: 8 at 84x84, 3 at 32x32), cropped back to
    its size at a random offset, and flipped left-right with probability 1/2.

    Draws from ``generator`` (the task sampler's), so augmented runs stay reproducible and resumable.
    """
    shape = images.shape
    flat = images.reshape(-1, *shape[-3:])
    n, _, h, w = flat.shape
    pad = max(1, h // 10) if padding is None else padding
    padded = F.pad(flat, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    cols = torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(0), cols) + dx[:, None]
    rows = torch.arange(h) + dy[:, None]
    index = torch.arange(n)[:, None, None]
    index, rows, cols = index.to(flat.device), rows.to(flat.device), cols.to(flat.device)
    cropped = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]
    return cropped.permute(0, 3, 1, 2).reshape(shape)


AUGMENTATIONS = {"crop_flip": random_crop_flip}
