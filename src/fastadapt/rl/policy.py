"""The Gaussian MLP policy of the MAML paper's RL experiments, as a functional model.

``forward(obs)`` returns the mean and the log standard deviation side by side (``[..., 2 * act_dim]``),
so that a policy is just a ``Forward`` for the shared inner loop: ``(params, obs) -> outputs``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fastadapt.nn.backbones import MLP


class GaussianPolicy(nn.Module):
    """A diagonal Gaussian over actions: mean from an MLP of ``hidden`` widths and ``activation`` (``"tanh"``, or
    ``"relu"`` as in the MAML paper's 2 x 100 policy), a learned state-independent log standard deviation
    (initialised at ``log_std``). A checkpoint holds no activation (it has no parameters): the run's config names
    it, and configs without one mean tanh, as every earlier run used."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (100, 100), log_std: float = 0.0,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.mean = MLP(obs_dim, act_dim, hidden=list(hidden), activation=activation)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std)))
        self.act_dim = act_dim

    def forward(self, obs: Tensor) -> Tensor:
        mean = self.mean(obs)
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)


def split(outputs: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and log standard deviation from a policy's outputs."""
    mean, log_std = outputs.chunk(2, dim=-1)
    return mean, log_std


def log_prob(outputs: Tensor, actions: Tensor) -> Tensor:
    """Log-density of ``actions`` (summed over action dimensions)."""
    mean, log_std = split(outputs)
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(dim=-1)


def sample(outputs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    mean, log_std = split(outputs)
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + log_std.exp() * noise


def kl_divergence(old: Tensor, new: Tensor) -> Tensor:
    """KL(old || new) per step between two diagonal Gaussians given as policy outputs."""
    old_mean, old_log_std = split(old)
    new_mean, new_log_std = split(new)
    var_ratio = torch.exp(2 * (old_log_std - new_log_std))
    t = ((old_mean - new_mean) * torch.exp(-new_log_std)).pow(2)
    return 0.5 * (var_ratio + t - 1).sum(dim=-1) + (new_log_std - old_log_std).sum(dim=-1)
