"""The inner loop of gradient-based meta-learning, written once for MAML and its family."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.utils.checkpoint
from torch import Tensor

from fastadapt.nn.params import Params, detach_params, sgd_step

Forward = Callable[[Params, Tensor], Tensor]
LearningRates = Callable[[int], dict[str, Tensor | float]]
Context = Callable[[int], Params]
OptimizerStep = Callable[[Params, Params, Params, int], tuple[Params, Params]]  # (params, grads, state, step)


def _no_context(step: int) -> Params:
    return {}


def inner_loop(
    forward: Forward,
    params: Params,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    steps: int,
    learning_rates: LearningRates,
    first_order: bool,
    checkpoint: bool = False,
    context: Context = _no_context,
) -> list[Params]:
    """Take ``steps`` gradient steps on ``loss_fn(forward(params, x), y)``; return every iterate.

    The result is ``[params, params_1, ..., params_steps]``. The gradients come from
    ``torch.func.grad``, so the loop runs unchanged inside ``torch.func.vmap``, and the iterates stay
    differentiable with respect to ``params`` (second order: the exact meta-gradient through every
    step). ``first_order=True`` takes each gradient at detached parameters, so the meta-gradient
    treats it as a constant (FOMAML) and no second-order graph is ever built; learned learning
    rates still receive their gradient.

    ``checkpoint=True`` keeps only the iterates and recomputes each step's graph during the
    backward pass (``torch.utils.checkpoint``), so that memory no longer grows with the activations
    of every step; it costs one more forward and backward of the support set per step, and runs
    in the per-task loop (torch.func transforms do not support its saved-tensor hooks).

    ``context(step)`` gives parameters that the forward of step ``step`` also uses but that do not adapt (MAML++'s
    per-step batch-norm weights); the meta-gradient reaches them through every step (first order: through none).
    """
    if checkpoint and torch.is_grad_enabled():
        return _checkpointed(forward, params, x, y, loss_fn, steps, learning_rates, first_order, context)
    grad = torch.func.grad(lambda p, shared: loss_fn(forward({**p, **shared}, x), y))
    iterates = [params]
    for step in range(steps):
        current, shared = iterates[-1], context(step)
        grads = grad(detach_params(current), detach_params(shared)) if first_order else grad(current, shared)
        iterates.append(sgd_step(current, grads, learning_rates(step)))
    return iterates


def _checkpointed(
    forward: Forward, params: Params, x: Tensor, y: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor],
    steps: int, learning_rates: LearningRates, first_order: bool, context: Context,
) -> list[Params]:
    """``inner_loop`` with each step recomputed in the backward pass instead of stored."""
    names = list(params)

    def one_step(step: int, *values: Tensor) -> tuple[Tensor, ...]:
        current = dict(zip(names, values, strict=True))
        at = {k: v.detach().requires_grad_() for k, v in current.items()} if first_order else current
        shared = detach_params(context(step)) if first_order else context(step)
        raw = torch.autograd.grad(
            loss_fn(forward({**at, **shared}, x), y), list(at.values()), create_graph=not first_order,
            allow_unused=True,
        )
        grads = [torch.zeros_like(v) if g is None else g for v, g in zip(at.values(), raw, strict=True)]
        return tuple(sgd_step(current, dict(zip(names, grads, strict=True)), learning_rates(step)).values())

    iterates = [params]
    for step in range(steps):
        values = torch.utils.checkpoint.checkpoint(one_step, step, *iterates[-1].values(), use_reentrant=False)
        iterates.append(dict(zip(names, values, strict=True)))
    return iterates


def first_order_loop(
    forward: Forward,
    params: Params,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    steps: int,
    batches: Tensor | Sequence[Tensor] | None,
    optimizer_step: OptimizerStep,
    state: Params | None = None,
) -> tuple[list[Params], Params]:
    """``steps`` steps of an optimizer with a state (Adam's moments, momentum buffers) on the gradient at the
    detached iterate, each on the examples ``batches[step]`` (all of them when ``None``); return every iterate and
    the optimizer's final state.

    The first-order loop of Reptile and of fine-tuning: no meta-gradient flows through it. ``optimizer_step(params,
    grads, state, step)`` gives the new parameters and state (``fastadapt.nn.params``: ``adam_step``,
    ``momentum_step``); the state starts as ``state`` (default: fresh). Pure tensor arithmetic, so it runs under
    ``torch.func.vmap``.
    """
    grad = torch.func.grad(lambda p, xb, yb: loss_fn(forward(p, xb), yb))
    iterates = [params]
    state = {} if state is None else state
    for step in range(steps):
        xb, yb = (x, y) if batches is None else (x[batches[step]], y[batches[step]])
        new, state = optimizer_step(iterates[-1], grad(detach_params(iterates[-1]), xb, yb), state, step)
        iterates.append(new)
    return iterates, state
