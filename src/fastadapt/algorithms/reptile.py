"""Reptile (Nichol et al. 2018): move the initialization towards the weights each task adapts to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import torch
from torch import Tensor

from fastadapt.algorithms.base import batch_metrics, batch_ways, task_scores
from fastadapt.algorithms.inner_loop import first_order_loop
from fastadapt.algorithms.maml import MAML, InnerLoopConfig
from fastadapt.algorithms.minibatches import minibatch_order, task_key
from fastadapt.components import option, register
from fastadapt.errors import ConfigError
from fastadapt.nn.params import ADAM_BETA2, Params, adam_step, flatten, sgd_step, unflatten
from fastadapt.tasks import TaskBatch

InnerOptimizer = Literal["sgd", "adam"]
InnerState = Literal["task", "shared", "sequential"]
INNER_OPTIMIZERS: tuple[str, ...] = get_args(InnerOptimizer)
INNER_STATES: tuple[str, ...] = get_args(InnerState)


class Reptile(MAML):
    """First-order meta-learning by ``theta <- theta + epsilon * mean_i(theta'_i - theta)``.

    ``theta'_i`` is the result of ``inner_steps`` steps of the inner optimizer on task i's support
    set: SGD of size ``inner_lr`` (``inner_optimizer="sgd"``), or Adam with ``beta1 = 0``,
    ``beta2 = 0.999`` and learning rate ``inner_lr`` (``"adam"``, the paper's choice). Each step sees the whole
    support set (``inner_batch=None``) or the next ``inner_batch`` examples of passes over it, each pass a fresh
    shuffle seeded by the task's support set; ``test_inner_batch`` is the batch when not training (default:
    ``inner_batch``), for ``test_inner_steps`` steps.

    Adam's second moments start fresh for each task (``inner_state="task"``), or are one state carried from
    training task to training task, from which every test task starts (Reptile's code resets only the weights
    between tasks). With ``"sequential"`` the tasks of a meta-batch run in turn, each from the state the previous
    one left, as the code runs them; with ``"shared"`` they all start from the batch's state (so they can run
    side by side, under ``vmap``) and the state moves on as if they had run in turn (``carry``). The state is
    saved with the weights.

    The update is expressed as a pseudo-gradient: the meta-objective
    ``0.5 * ||theta - stopgrad(theta'_i)||^2`` has gradient ``theta - theta'_i``, so plain SGD with
    learning rate epsilon performs Reptile's step, and any torch optimizer can be used instead.
    """

    name = "reptile"
    inner_moments: Tensor
    inner_count: Tensor

    def __init__(self, *args: Any, inner_optimizer: str = "sgd", inner_batch: int | None = None,
                 test_inner_batch: int | None = None, inner_state: str = "task", **kwargs: Any) -> None:
        kwargs["first_order"] = True
        super().__init__(*args, **kwargs)
        if inner_optimizer not in INNER_OPTIMIZERS:
            raise ConfigError(f"inner_optimizer must be one of {INNER_OPTIMIZERS}, got {inner_optimizer!r}")
        if inner_state not in INNER_STATES:
            raise ConfigError(f"inner_state must be one of {INNER_STATES}, got {inner_state!r}")
        check_inner_state(inner_optimizer, inner_state)
        if inner_state == "sequential" and self.vmap:
            raise ConfigError("inner_state=sequential runs a meta-batch's tasks in turn, each from the Adam state "
                              "the previous one left: not under vmap (use vmap=False, or inner_state=shared)")
        for key, value in (("inner_batch", inner_batch), ("test_inner_batch", test_inner_batch)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{key} must be a positive integer (or None: the whole support set), got {value!r}")
        self.inner_optimizer = inner_optimizer
        self.inner_batch = inner_batch
        self.test_inner_batch = inner_batch if test_inner_batch is None else test_inner_batch
        self.inner_state = inner_state
        if inner_state != "task":
            params = list(self.fast_params().values())
            size = sum(p.numel() for p in params)
            self.register_buffer("inner_moments", params[0].new_zeros(size))
            self.register_buffer("inner_count", torch.zeros((), dtype=torch.long))
        self.register_load_state_dict_pre_hook(_adopt_inner_state)

    def _adapted(self, support_x: Tensor, support_y: Tensor, steps: int) -> list[Params]:
        """Every iterate of ``steps`` inner steps from the current weights, each on its mini-batch, first order."""
        return self._inner_run(support_x, support_y, steps)[0]

    def _inner_run(self, support_x: Tensor, support_y: Tensor, steps: int) -> tuple[list[Params], Params]:
        """The iterates of the inner loop and the inner optimizer's final state."""
        order = self._minibatches(support_x, len(support_y), steps)
        params = self.fast_params()
        count, state = 0, {}
        if self.inner_state != "task":
            count = int(self.inner_count)
            state = dict(zip(params, unflatten(self.inner_moments, params.values()), strict=True))

        def step(params: Params, grads: Params, moments: Params, index: int) -> tuple[Params, Params]:
            """Inner step ``index`` of the task, at its learning rates; Adam's bias correction counts the steps of
            its state, ``count`` before this task (SGD keeps no state)."""
            rates = self.learning_rates(index)
            if self.inner_optimizer == "adam":
                return adam_step(params, grads, moments, count + index, rates)
            return sgd_step(params, grads, rates), moments

        return first_order_loop(self.apply_fast, params, self.features(support_x), support_y, self.loss_fn, steps,
                                order, step, state)

    def check_distributable(self) -> None:
        if self.inner_state != "task":
            raise ConfigError(f"inner_state={self.inner_state} carries one Adam state through every training task, "
                              "which processes holding slices of the meta-batch cannot share: train in one process, "
                              "or use inner_state=task")

    def uses_vmap(self, batch: TaskBatch) -> bool:
        """Never for a training meta-batch whose tasks run in turn (``inner_state="sequential"``)."""
        return not (self.training and self.inner_state == "sequential") and super().uses_vmap(batch)

    def _minibatches(self, support_x: Tensor, size: int, steps: int) -> Tensor | None:
        """The examples of each inner step (``[steps, batch]``), or ``None``: the whole support set every step."""
        batch = self.inner_batch if self.training else self.test_inner_batch
        return None if batch is None else minibatch_order(task_key(support_x), size, batch, steps)

    def task_objective(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor, ways: int | None
    ) -> tuple[Tensor, Tensor]:
        objective, outputs, _ = self._task_terms(support_x, support_y, query_x, ways)
        return objective, outputs

    def _task_terms(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The task's objective, its query outputs, and the inner optimizer's final state as one vector."""
        self._check_ways(ways)
        initial = self.fast_params()
        with torch.no_grad():
            iterates, state = self._inner_run(support_x, support_y, self.inner_steps)
            outputs = self.apply_fast(iterates[-1], self.features(query_x))
        objective = sum(0.5 * (p - iterates[-1][name]).pow(2).sum() for name, p in initial.items())
        final = flatten(state[name] for name in initial) if self.inner_state != "task" else torch.zeros(0)
        return cast(Tensor, objective), outputs, final

    def meta_backward(self, batch: TaskBatch) -> tuple[float, dict[str, float]]:
        if self.inner_state == "task":
            return super().meta_backward(batch)
        loss, metrics = self.meta_loss(batch)  # a shared state needs every task's; each graph is small
        loss.backward()
        return loss.item(), metrics

    def _batch_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, float]]:
        """The batch's objective and metrics; with a shared inner state, in training, the state moves on."""
        if self.inner_state == "task":
            return super()._batch_loss(batch)
        ways = batch_ways(batch)

        in_turn = self.training and self.inner_state == "sequential"

        def one_task(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
            objective, outputs, final = self._task_terms(sx, sy, qx, ways)
            if in_turn:  # the next task starts where this one left the state
                self.carry(final.unsqueeze(0))
            return (objective, *task_scores(self.loss_fn, outputs.detach(), qy), final)

        objective, losses, accuracies, finals = self._map_tasks(one_task, batch)
        if self.training and not in_turn:
            self.carry(finals)
        return objective.mean(), batch_metrics(losses, accuracies, batch.query_y)

    @torch.no_grad()
    def carry(self, finals: Tensor) -> None:
        """Move the shared state on by a meta-batch whose tasks each started from it and ended at ``finals[i]``:
        Adam's moments are a running average, so the state after the tasks in turn is the start decayed by all
        their steps plus each task's own increment decayed by the steps of the tasks after it."""
        steps, tasks, start = self.inner_steps, len(finals), self.inner_moments
        increments = finals - ADAM_BETA2**steps * start
        later = torch.arange(tasks - 1, -1, -1, device=finals.device, dtype=finals.dtype)
        decays = (ADAM_BETA2 ** (steps * later)).unsqueeze(1)
        self.inner_moments.copy_(ADAM_BETA2 ** (steps * tasks) * start + (decays * increments).sum(0))
        self.inner_count += steps * tasks


def check_inner_state(inner_optimizer: str, inner_state: str) -> None:
    """Refuse, in one line, a carried inner state for an inner optimizer that keeps none."""
    if inner_state != "task" and inner_optimizer != "adam":
        raise ConfigError(f"inner_state={inner_state!r} carries Adam's moments from task to task, and inner_optimizer "
                          f"{inner_optimizer!r} keeps none: use inner_optimizer=adam, or inner_state=task")


def _adopt_inner_state(learner: Reptile, state: dict[str, Tensor], prefix: str, *_: Any) -> None:
    """Let weights trained with either ``inner_state`` load into a learner with the other: one that starts each task
    fresh ignores a carried state, and one that carries a state starts a task-trained model's from fresh."""
    for name in ("inner_moments", "inner_count"):
        if learner.inner_state == "task":
            state.pop(prefix + name, None)
        elif prefix + name not in state:
            state[prefix + name] = getattr(learner, name).clone()


@register("algorithm", "reptile")
@dataclass
class ReptileConfig(InnerLoopConfig):
    """Reptile: the inner loop's keys (it is first order by construction), the inner optimizer and its mini-batches
    (``None``: the whole support set; ``test_inner_batch`` ``None``: as in training), and whether Adam's state is
    fresh for each task (``task``) or carried across the training tasks (``sequential``: a meta-batch's tasks in turn,
    as Reptile's code; ``shared``: each from the batch's state)."""

    learner = Reptile
    inner_optimizer: InnerOptimizer = "sgd"
    inner_batch: int | None = option(None, minimum=1)
    test_inner_batch: int | None = option(None, minimum=1)
    inner_state: InnerState = "task"

    def validate(self) -> None:
        check_inner_state(self.inner_optimizer, self.inner_state)
