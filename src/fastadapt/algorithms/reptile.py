"""Reptile (Nichol et al. 2018): move the initialization towards the weights each task adapts to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import Tensor

from fastadapt.algorithms.inner_loop import first_order_loop
from fastadapt.algorithms.maml import MAML, InnerLoopConfig
from fastadapt.algorithms.minibatches import minibatch_order, task_key
from fastadapt.components import option, register
from fastadapt.errors import ConfigError
from fastadapt.nn.params import Params, adam_step, sgd_step

INNER_OPTIMIZERS = ("sgd", "adam")


class Reptile(MAML):
    """First-order meta-learning by ``theta <- theta + epsilon * mean_i(theta'_i - theta)``.

    ``theta'_i`` is the result of ``inner_steps`` steps of the inner optimizer on task i's support
    set: SGD of size ``inner_lr`` (``inner_optimizer="sgd"``), or Adam with ``beta1 = 0``,
    ``beta2 = 0.999`` and learning rate ``inner_lr``, its state fresh for each task (``"adam"``, the
    paper's choice). Each step sees the whole support set (``inner_batch=None``) or the next
    ``inner_batch`` examples of passes over it, each pass a fresh shuffle seeded by the task's support
    set; ``test_inner_batch`` is the batch when not training (default: ``inner_batch``), for
    ``test_inner_steps`` steps.

    The update is expressed as a pseudo-gradient: the meta-objective
    ``0.5 * ||theta - stopgrad(theta'_i)||^2`` has gradient ``theta - theta'_i``, so plain SGD with
    learning rate epsilon performs Reptile's step, and any torch optimizer can be used instead.
    """

    name = "reptile"

    def __init__(self, *args: Any, inner_optimizer: str = "sgd", inner_batch: int | None = None,
                 test_inner_batch: int | None = None, **kwargs: Any) -> None:
        kwargs["first_order"] = True
        super().__init__(*args, **kwargs)
        if inner_optimizer not in INNER_OPTIMIZERS:
            raise ConfigError(f"inner_optimizer must be one of {INNER_OPTIMIZERS}, got {inner_optimizer!r}")
        for key, value in (("inner_batch", inner_batch), ("test_inner_batch", test_inner_batch)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{key} must be a positive integer (or None: the whole support set), got {value!r}")
        self.inner_optimizer = inner_optimizer
        self.inner_batch = inner_batch
        self.test_inner_batch = inner_batch if test_inner_batch is None else test_inner_batch

    def _adapted(self, support_x: Tensor, support_y: Tensor, steps: int) -> list[Params]:
        """Every iterate of ``steps`` inner steps from the current weights, each on its mini-batch, first order."""
        order = self._minibatches(support_x, len(support_y), steps)
        return first_order_loop(self.apply_fast, self.fast_params(), self.features(support_x), support_y, self.loss_fn,
                                steps, order, self._step)

    def _step(self, params: Params, grads: Params, moments: Params, step: int) -> tuple[Params, Params]:
        """One step of the inner optimizer: the new parameters and Adam's second moments (SGD keeps none)."""
        if self.inner_optimizer == "adam":
            return adam_step(params, grads, moments, step, self.learning_rates(step))
        return sgd_step(params, grads, self.learning_rates(step)), moments

    def _minibatches(self, support_x: Tensor, size: int, steps: int) -> Tensor | None:
        """The examples of each inner step (``[steps, batch]``), or ``None``: the whole support set every step."""
        batch = self.inner_batch if self.training else self.test_inner_batch
        return None if batch is None else minibatch_order(task_key(support_x), size, batch, steps)

    def task_objective(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor, ways: int | None
    ) -> tuple[Tensor, Tensor]:
        self._check_ways(ways)
        initial = self.fast_params()
        with torch.no_grad():
            adapted = self._adapted(support_x, support_y, self.inner_steps)[-1]
            outputs = self.apply_fast(adapted, self.features(query_x))
        objective = sum(0.5 * (p - adapted[name]).pow(2).sum() for name, p in initial.items())
        return cast(Tensor, objective), outputs


@register("algorithm", "reptile")
@dataclass
class ReptileConfig(InnerLoopConfig):
    """Reptile: the inner loop's keys (it is first order by construction), the inner optimizer and its mini-batches
    (``None``: the whole support set; ``test_inner_batch`` ``None``: as in training)."""

    learner = Reptile
    inner_optimizer: Literal["sgd", "adam"] = "sgd"
    inner_batch: int | None = option(None, minimum=1)
    test_inner_batch: int | None = option(None, minimum=1)
