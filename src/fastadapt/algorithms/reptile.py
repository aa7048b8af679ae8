"""Reptile (Nichol et al. 2018): move the initialization towards the weights each task adapts to."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import Tensor

from fastadapt.algorithms.maml import MAML, InnerLoopConfig
from fastadapt.components import option, register
from fastadapt.errors import ConfigError
from fastadapt.nn.params import Params, detach_params, sgd_step

INNER_OPTIMIZERS = ("sgd", "adam")
_MASK = 0xFFFFFFFF  # hashes are 32-bit values held in int64, whose products with 31-bit multipliers never overflow
_INTEGERS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _mix(x: Tensor) -> Tensor:
    """A 32-bit integer hash of each element of an int64 tensor (xorshift-multiply rounds)."""
    for multiplier in (0x7FEB352D, 0x2C1B3C6D):
        x = ((x ^ (x >> 16)) * multiplier) & _MASK
    return x ^ (x >> 16)


def task_key(x: Tensor) -> Tensor:
    """A 32-bit key of a tensor's bits: the seed of a task's mini-batches.

    An integer sum, so the same bits give the same key in a per-task loop and under ``torch.func.vmap``.
    """
    bits = x.detach().reshape(-1).view(_INTEGERS[x.element_size()]).to(torch.int64)
    return _mix(((bits ^ (bits >> 32)) & _MASK).sum() & _MASK)


def minibatch_order(key: Tensor, size: int, batch: int, steps: int) -> Tensor:
    """``[steps, batch]`` indices into ``range(size)``: consecutive runs of ``batch`` from passes over the examples,
    each pass a fresh shuffle (so a batch may span two passes), as the official code's ``_mini_batches``.

    The shuffles are drawn by a counter-based generator seeded by ``key`` (``task_key``): pure tensor arithmetic,
    so the order is the same in a loop and under vmap, and a resumed run draws it again bit for bit.
    """
    passes = -(-steps * batch // size)
    keys = _mix(_mix(torch.arange(passes * size, device=key.device)) ^ key)
    order = keys.view(passes, size).argsort(dim=1, stable=True).flatten()
    return order[: steps * batch].view(steps, batch)


def adam_step(params: Params, grads: Params, moments: Params, step: int, lrs: dict[str, Tensor | float],
              beta2: float = 0.999, eps: float = 1e-8) -> tuple[Params, Params]:
    """One step of Adam with ``beta1 = 0`` (the first moment is the gradient), ``torch.optim.Adam(betas=(0, beta2))``'s
    arithmetic on parameter dicts: the new parameters and second moments (absent ones are zero, a fresh state).
    ``step`` counts from 0."""
    moments = {name: beta2 * moments.get(name, 0.0) + (1 - beta2) * g * g for name, g in grads.items()}
    correction = math.sqrt(1 - beta2 ** (step + 1))
    new = {name: p - lrs[name] * grads[name] / (moments[name].sqrt() / correction + eps) for name, p in params.items()}
    return new, moments


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
        features = self.features(support_x)
        order = self._minibatches(support_x, len(support_y), steps)
        grad = torch.func.grad(lambda p, x, y: self.loss_fn(self.apply_fast(p, x), y))
        iterates = [self.fast_params()]
        moments: Params = {}  # Adam's second moments, fresh for each task
        for step in range(steps):
            x, y = (features, support_y) if order is None else (features[order[step]], support_y[order[step]])
            params, moments = self._step(iterates[-1], grad(detach_params(iterates[-1]), x, y), moments, step)
            iterates.append(params)
        return iterates

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
