"""``MetaLearner``: what every algorithm is, and the one place a batch of tasks is run.

An algorithm says how it adapts to a support set (``adapt``); the meta-objective, the evaluation
of a task batch and the choice between a per-task loop and ``torch.func.vmap`` live here once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastadapt.errors import ConfigError
from fastadapt.nn.batchnorm import elementary_batch_norm
from fastadapt.tasks import TaskBatch

Predictor = Callable[[Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]

_LOSSES: dict[str, LossFn] = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss}


def resolve_loss(loss: str | LossFn) -> LossFn:
    """A loss function from its name (``"cross_entropy"``, ``"mse"``) or a callable ``(outputs, targets) -> scalar``."""
    if callable(loss):
        return loss
    if loss not in _LOSSES:
        raise ConfigError(f"unknown loss {loss!r}; use one of {sorted(_LOSSES)} or a callable (outputs, targets) -> scalar")
    return _LOSSES[loss]


def is_classification(targets: Tensor) -> bool:
    """Integer targets are class labels (accuracy is defined); float targets are regression."""
    return not targets.is_floating_point()


class MetaLearner(nn.Module):
    """Base class of all algorithms: ``adapt`` a predictor to a support set; ``meta_loss`` over a batch.

    ``vmap=True`` runs a batch of tasks as one ``torch.func.vmap`` computation, ``False`` as a
    per-task loop, ``None`` chooses by device (the loop on CPU, where it measured 2x faster with
    2.4x less memory, see docs/PERFORMANCE.md; vmap on accelerators). Both give the same numbers.
    """

    name: ClassVar[str] = "metalearner"

    def __init__(self, loss: str | LossFn = "cross_entropy", vmap: bool | None = None) -> None:
        super().__init__()
        self.loss_fn = resolve_loss(loss)
        self.vmap = vmap

    def adapt(self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None, ways: int | None = None) -> Predictor:
        """Learn from one task's support set; return a callable mapping query inputs to outputs.

        ``steps`` overrides the number of adaptation steps (gradient-based methods); ``ways`` is the
        number of classes, inferred from ``support_y`` when not given.
        """
        raise NotImplementedError

    def task_objective(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor, ways: int | None
    ) -> tuple[Tensor, Tensor]:
        """The meta-objective of one task and the query outputs it was computed from.

        By default the query loss after adaptation; methods whose meta-gradient is something else
        (Reptile, MAML++'s multi-step loss) override this.
        """
        outputs = self.adapt(support_x, support_y, ways=ways)(query_x)
        return self.loss_fn(outputs, query_y), outputs

    def probabilities(self, outputs: Tensor) -> Tensor:
        """Class probabilities from a predictor's outputs ``[n, ways]`` (a softmax of logits)."""
        return outputs.softmax(dim=-1)

    def set_step(self, step: int) -> None:
        """Told by the trainer before each meta-update, for schedules inside an algorithm (MAML++)."""

    def training_batch(self, batch: TaskBatch) -> TaskBatch:
        """The batch that meta-training learns from: the sampled one, unless the method augments it
        (Siamese's affine distortions) or relabels it (FineTune's dataset classes)."""
        return batch

    def uses_vmap(self, batch: TaskBatch) -> bool:
        if self.vmap is not None:
            return self.vmap
        return batch.support_x.device.type != "cpu"

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, float]]:
        """The meta-objective averaged over the batch, and the query ``loss`` (and ``accuracy``)."""
        return self._batch_loss(self.training_batch(batch))

    def _batch_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, float]]:
        ways = _ways(batch)

        def one_task(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            objective, outputs = self.task_objective(sx, sy, qx, qy, ways)
            return (objective, *_scores(self.loss_fn, outputs.detach(), qy))

        objective, losses, accuracies = self._map_tasks(one_task, batch)
        metrics = {"loss": losses.detach().mean().item()}
        if is_classification(batch.query_y):
            metrics["accuracy"] = accuracies.mean().item()
        return objective.mean(), metrics

    def meta_backward(self, batch: TaskBatch) -> tuple[float, dict[str, float]]:
        """Accumulate the gradient of ``meta_loss(batch)`` into ``.grad``; return its value and metrics.

        In the per-task loop each task's graph is differentiated and freed before the next task is
        run, so peak memory is that of one task rather than of the whole meta-batch (the trainer
        uses this); under vmap the batch is one graph and is differentiated at once.
        """
        batch = self.training_batch(batch)
        if self.uses_vmap(batch):
            loss, metrics = self._batch_loss(batch)
            loss.backward()
            return loss.item(), metrics
        ways = _ways(batch)
        objectives, losses, accuracies = [], [], []
        for sx, sy, qx, qy in zip(batch.support_x, batch.support_y, batch.query_x, batch.query_y):
            objective, outputs = self.task_objective(sx, sy, qx, qy, ways)
            (objective / len(batch)).backward()
            objectives.append(objective.detach())
            loss, accuracy = _scores(self.loss_fn, outputs.detach(), qy)
            losses.append(loss)
            accuracies.append(accuracy)
        metrics = {"loss": torch.stack(losses).mean().item()}
        if is_classification(batch.query_y):
            metrics["accuracy"] = torch.stack(accuracies).mean().item()
        return torch.stack(objectives).mean().item(), metrics

    def evaluate(self, batch: TaskBatch, steps: int | None = None) -> dict[str, Tensor]:
        """Per-task query ``loss`` (and ``accuracy``) after adaptation, without a meta-gradient graph."""
        ways = _ways(batch)

        def one_task(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor]:
            return _scores(self.loss_fn, self.adapt(sx, sy, steps=steps, ways=ways)(qx), qy)

        with torch.no_grad():
            losses, accuracies = self._map_tasks(one_task, batch)
        scores = {"loss": losses}
        if is_classification(batch.query_y):
            scores["accuracy"] = accuracies
        return scores

    def _map_tasks(self, fn: Callable[..., tuple[Tensor, ...]], batch: TaskBatch) -> tuple[Tensor, ...]:
        inputs = (batch.support_x, batch.support_y, batch.query_x, batch.query_y)
        if self.uses_vmap(batch):
            with elementary_batch_norm():
                return torch.func.vmap(fn)(*inputs)
        results = [fn(*task) for task in zip(*inputs)]
        return tuple(torch.stack(column) for column in zip(*results))


def _ways(batch: TaskBatch) -> int | None:
    if not is_classification(batch.support_y):
        return None
    return int(batch.support_y.max()) + 1


def _scores(loss_fn: LossFn, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Query loss and accuracy of one task (accuracy is 0 for regression, and not reported)."""
    loss = loss_fn(outputs, targets)
    if is_classification(targets):
        accuracy = (outputs.argmax(dim=-1) == targets).to(outputs.dtype).mean()
    else:
        accuracy = torch.zeros((), dtype=outputs.dtype, device=outputs.device)
    return loss, accuracy.detach()
