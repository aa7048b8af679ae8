"""Function-regression task families: the sinusoid tasks of the MAML paper (Finn et al. 2017, 5.1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fastadapt.components import TaskFamilyConfig, register
from fastadapt.errors import ConfigError
from fastadapt.tasks import TaskBatch, TaskDistribution


def _bounds(pair: Sequence[float]) -> tuple[float, float]:
    """A (low, high) range given as any two numbers."""
    low, high = pair
    return float(low), float(high)


class SinusoidTasks(TaskDistribution):
    """Regress ``y = A sin(x - phi)`` from ``shots`` points; each task draws its own A and phi.

    The MAML paper's ranges: amplitude U[0.1, 5], phase U[0, pi], inputs U[-5, 5]. Inputs and
    targets have shape ``[tasks, points, 1]``; support and query points are drawn independently.
    """

    def __init__(
        self,
        shots: int = 10,
        queries: int = 10,
        seed: int = 0,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        for label, value in (("shots", shots), ("queries", queries)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{label} must be an integer of at least 1, got {value!r}")
        for label, (low, high) in (("amplitude", amplitude), ("phase", phase), ("x_range", x_range)):
            if not low <= high:
                raise ConfigError(f"{label} range must be (low, high) with low <= high, got {(low, high)}")
        self.shots, self.queries, self.seed = shots, queries, seed
        self.amplitude, self.phase, self.x_range = _bounds(amplitude), _bounds(phase), _bounds(x_range)
        self.generator = torch.Generator().manual_seed(seed)

    def __repr__(self) -> str:
        return f"SinusoidTasks(shots={self.shots}, queries={self.queries}, seed={self.seed})"

    def _uniform(self, shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
        low, high = bounds
        return torch.rand(shape, generator=generator) * (high - low) + low

    def _draw(self, n: int, generator: torch.Generator) -> TaskBatch:
        amplitude = self._uniform((n, 1, 1), self.amplitude, generator)
        phase = self._uniform((n, 1, 1), self.phase, generator)
        support_x = self._uniform((n, self.shots, 1), self.x_range, generator)
        query_x = self._uniform((n, self.queries, 1), self.x_range, generator)
        return TaskBatch(
            support_x,
            amplitude * torch.sin(support_x - phase),
            query_x,
            amplitude * torch.sin(query_x - phase),
        )


@register("dataset", "sinusoid")
@dataclass
class SinusoidConfig(TaskFamilyConfig):
    """The MAML paper's sinusoid regression: scalar inputs (``features``), tasks of random amplitude and phase."""

    problem = "regression"
    inputs = "vectors"
    features = 1

    def tasks(self, split: str, ways: int, shots: int, queries: int, seed: int, augment: Any) -> SinusoidTasks:
        return SinusoidTasks(shots=shots, queries=queries, seed=seed)
