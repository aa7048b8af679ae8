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
