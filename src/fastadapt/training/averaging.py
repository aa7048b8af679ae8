"""The mean of the meta-gradients, meta-loss and metrics over the processes of a distributed run."""

from __future__ import annotations

import torch

from fastadapt.distributed import World


def average_over_processes(
    model: torch.nn.Module, loss: float, metrics: dict[str, float], world: World
) -> tuple[float, dict[str, float]]:
    """Replace each gradient of ``model`` by its mean over the processes, and return the mean ``loss`` and
    ``metrics``: one all-reduce (in a world of one, everything stays as it is)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    stats = torch.tensor([loss, *metrics.values()], dtype=torch.float64, device=grads[0].device if grads else None)
    world.average([*grads, stats])
    return stats[0].item(), dict(zip(metrics, stats[1:].tolist()))
