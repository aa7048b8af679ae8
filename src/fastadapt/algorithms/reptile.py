"""Reptile (Nichol et al. 2018): move the initialization towards the weights each task adapts to."""

from __future__ import annotations

import torch
from torch import Tensor

from fastadapt.algorithms.maml import MAML


class Reptile(MAML):
    """First-order meta-learning by ``theta <- theta + epsilon * mean_i(theta'_i - theta)``.

    ``theta'_i`` is the result of ``inner_steps`` SGD steps of size ``inner_lr`` on task i's
    support set. The update is expressed as a pseudo-gradient: the meta-objective
    ``0.5 * ||theta - stopgrad(theta'_i)||^2`` has gradient ``theta - theta'_i``, so plain SGD with
    learning rate epsilon performs Reptile's step, and any torch optimizer can be used instead.
    """

    name = "reptile"

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["first_order"] = True
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def task_objective(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor, ways: int | None
    ) -> tuple[Tensor, Tensor]:
        self._check_ways(ways)
        initial = self.fast_params()
        with torch.no_grad():
            adapted = self._adapted(support_x, support_y, self.inner_steps)[-1]
            outputs = self.apply_fast(adapted, self.features(query_x))
        objective = sum(0.5 * (p - adapted[name]).pow(2).sum() for name, p in initial.items())
        return objective, outputs
