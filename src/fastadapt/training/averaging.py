"""The means over the processes of a distributed run: of the meta-gradients (or, for learners that update
themselves, of the updated parameters), the meta-loss and the metrics."""

from __future__ import annotations

import torch

from fastadapt.distributed import World


def average_over_processes(
    model: torch.nn.Module, loss: float, metrics: dict[str, float], world: World
) -> tuple[float, dict[str, float]]:
    """Replace each gradient of ``model`` by its mean over the processes, and return the mean ``loss`` and
    ``metrics``: one all-reduce (in a world of one, everything stays as it is)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return _average(grads, loss, metrics, world)


def average_parameters(
    model: torch.nn.Module, loss: float, metrics: dict[str, float], world: World
) -> tuple[float, dict[str, float]]:
    """Replace each parameter of ``model`` by its mean over the processes, and return the mean ``loss`` and
    ``metrics``. After an update that each process made from the same parameters on its slice of the meta-batch
    (meta-RL's outer step), this applies the mean of the updates."""
    with torch.no_grad():
        return _average(list(model.parameters()), loss, metrics, world)


def _average(
    tensors: list[torch.Tensor], loss: float, metrics: dict[str, float], world: World
) -> tuple[float, dict[str, float]]:
    """Average ``tensors`` in place, and ``loss`` and ``metrics``, in one all-reduce."""
    stats = torch.tensor([loss, *metrics.values()], dtype=torch.float64, device=tensors[0].device if tensors else None)
    world.average([*tensors, stats])
    return stats[0].item(), dict(zip(metrics, stats[1:].tolist(), strict=True))
