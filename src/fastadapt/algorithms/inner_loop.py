"""The inner loop of gradient-based meta-learning, written once for MAML and its family."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fastadapt.nn.params import Params, detach_params, sgd_step

Forward = Callable[[Params, Tensor], Tensor]
LearningRates = Callable[[int], dict[str, Tensor | float]]


def inner_loop(
    forward: Forward,
    params: Params,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    steps: int,
    learning_rates: LearningRates,
    first_order: bool,
) -> list[Params]:
    """Take ``steps`` gradient steps on ``loss_fn(forward(params, x), y)``; return every iterate.

    The result is ``[params, params_1, ..., params_steps]``. The gradients come from
    ``torch.func.grad``, so the loop runs unchanged inside ``torch.func.vmap``, and the iterates stay
    differentiable with respect to ``params`` (second order: the exact meta-gradient through every
    step). ``first_order=True`` takes each gradient at detached parameters, so the meta-gradient
    treats it as a constant (FOMAML) and no second-order graph is ever built; learned learning
    rates still receive their gradient.
    """
    grad = torch.func.grad(lambda p: loss_fn(forward(p, x), y))
    iterates = [params]
    for step in range(steps):
        current = iterates[-1]
        grads = grad(detach_params(current) if first_order else current)
        iterates.append(sgd_step(current, grads, learning_rates(step)))
    return iterates
