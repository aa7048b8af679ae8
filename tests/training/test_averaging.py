"""Averaging over processes: one all-reduce of the gradients, loss and metrics, apart from any check."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fastadapt.distributed import World
from fastadapt.training.averaging import average_over_processes


@dataclass(frozen=True)
class _HalvingWorld(World):
    """Two processes whose other one holds zeros everywhere: the mean halves every value."""

    size: int = 2

    def average(self, tensors: list[torch.Tensor]) -> None:
        calls.append(len(tensors))
        for t in tensors:
            t.div_(2)


calls: list[int] = []


def _model() -> torch.nn.Module:
    model = torch.nn.Linear(2, 1)
    model.weight.grad = torch.full_like(model.weight, 4.0)
    return model  # the bias has no gradient


def test_one_reduction_of_gradients_loss_and_metrics() -> None:
    calls.clear()
    model = _model()
    loss, metrics = average_over_processes(model, 2.0, {"accuracy": 0.5}, _HalvingWorld())
    assert calls == [2]  # the weight's gradient and the statistics, together
    assert (loss, metrics) == (1.0, {"accuracy": 0.25})
    assert torch.equal(model.weight.grad, torch.full_like(model.weight, 2.0))


def test_a_world_of_one_keeps_everything_even_a_nonfinite_loss() -> None:
    model = _model()
    loss, metrics = average_over_processes(model, float("nan"), {"loss": 0.75}, World())
    assert loss != loss and metrics == {"loss": 0.75}
    assert torch.equal(model.weight.grad, torch.full_like(model.weight, 4.0))
