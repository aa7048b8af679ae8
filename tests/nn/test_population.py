"""Batch norm on population statistics: recorded moments pooled exactly, and normalizing as eval-mode batch norm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fastadapt.errors import ConfigError
from fastadapt.nn import BatchNorm, call
from fastadapt.nn.population import StatisticsRecorder, fixed_statistics


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.BatchNorm2d(3), nn.Flatten()
    ).double()
    with torch.no_grad():
        for layer in (model[1], model[4]):
            layer.weight.uniform_(0.5, 1.5)
            layer.bias.uniform_(-0.5, 0.5)
    return model


def test_recorded_moments_average_each_batchs_moments() -> None:
    """By hand: a layer's moments over two batches are the means of each batch's mean and variance, as running
    averages estimate them (not the moments of both batches as one, which add the spread of the batch means)."""
    model = _model()
    a, b = torch.randn(5, 1, 7, 7, dtype=torch.float64), torch.randn(3, 1, 7, 7, dtype=torch.float64) * 2 + 1
    recorder = StatisticsRecorder(model)
    with recorder.recording():
        call(model, a)
        call(model, b)
    moments = recorder.moments()
    first = [model[0](x).detach() for x in (a, b)]
    torch.testing.assert_close(moments["1"][0], sum(f.mean((0, 2, 3)) for f in first) / 2)
    torch.testing.assert_close(moments["1"][1], sum(f.var((0, 2, 3), unbiased=False) for f in first) / 2)
    assert set(moments) == {"1", "4"} and moments["4"][0].dtype == torch.float64
    assert all(value.grad_fn is None for pair in moments.values() for value in pair)


def test_fixed_statistics_normalize_as_eval_mode_batch_norm() -> None:
    """PyTorch's own eval-mode batch norm, its running statistics set to the recorded moments, is the reference."""
    model = _model()
    recorder = StatisticsRecorder(model)
    with recorder.recording():
        call(model, torch.randn(16, 1, 7, 7, dtype=torch.float64))
    moments = recorder.moments()
    reference = _model()
    for name, (mean, var) in moments.items():
        reference.get_submodule(name).running_mean.copy_(mean)
        reference.get_submodule(name).running_var.copy_(var)
    x = torch.randn(6, 1, 7, 7, dtype=torch.float64)
    with fixed_statistics(model, moments):
        fixed = call(model, x)
        alone = call(model, x[:2])
    torch.testing.assert_close(fixed, reference.eval()(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alone, fixed[:2])  # each example on its own: non-transductive
    assert not torch.allclose(call(model, x), fixed)  # outside, batch statistics again


def test_a_batch_recorded_alone_is_normalized_as_by_its_own_statistics() -> None:
    model = nn.Sequential(nn.Linear(5, 4), BatchNorm(4), nn.ReLU(), nn.Linear(4, 3)).double()
    x = torch.randn(9, 5, dtype=torch.float64)
    recorder = StatisticsRecorder(model)
    with recorder.recording():
        own = call(model, x)
    with fixed_statistics(model, recorder.moments()):
        torch.testing.assert_close(call(model, x), own, rtol=1e-5, atol=1e-6)


def test_population_statistics_refuse_what_they_cannot_name() -> None:
    with pytest.raises(ConfigError, match="need batch-norm layers, and this model has none"):
        StatisticsRecorder(nn.Linear(2, 2))
    model = _model()
    with pytest.raises(ConfigError, match="no moments for the batch-norm layer 4, which the recording passes never"):
        with fixed_statistics(model, {"1": (torch.zeros(4), torch.ones(4))}):
            call(model, torch.randn(2, 1, 7, 7, dtype=torch.float64))
    with pytest.raises(ConfigError, match="no batch reached the batch-norm layers"):
        StatisticsRecorder(_model()).moments()

    class Bare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.BatchNorm1d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.batch_norm(x, None, None, training=True)

    with pytest.raises(ConfigError, match="calls F.batch_norm outside a batch-norm layer"):
        with StatisticsRecorder(Bare()).recording():
            Bare()(torch.randn(3, 2))
