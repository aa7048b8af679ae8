"""``MetaLearner``: what every algorithm is, and the one place a batch of tasks is run.

An algorithm says how it adapts to a support set (``adapt``); the meta-objective, the evaluation
of a task batch and the choice between a per-task loop and ``torch.func.vmap`` live here once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastadapt.errors import ConfigError
from fastadapt.nn.functional import (
    check_statistics,
    check_supported,
    exact_normalization,
    explained_errors,
    math_attention,
    unbatchable_layer,
    with_statistics,
)
from fastadapt.nn.population import Moments, normalization
from fastadapt.tasks import TaskBatch, ways_of

Predictor = Callable[[Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]

_LOSSES: dict[str, LossFn] = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss}


def resolve_loss(loss: str | LossFn) -> LossFn:
    """A loss function from its name (``"cross_entropy"``, ``"mse"``) or a callable ``(outputs, targets) -> scalar``."""
    if callable(loss):
        return loss
    if loss not in _LOSSES:
        raise ConfigError(
            f"unknown loss {loss!r}; use one of {sorted(_LOSSES)} or a callable (outputs, targets) -> scalar"
        )
    return _LOSSES[loss]


def embedding_size(encoder: nn.Module, given: int | None, method: str) -> int:
    """The size of ``encoder``'s embeddings: ``given``, else its ``embedding_dim`` attribute (fastadapt's backbones)."""
    dim = given if given is not None else getattr(encoder, "embedding_dim", None)
    if not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"{method} needs the encoder's embedding size: pass embedding_dim=<size of its output>")
    return dim


def is_classification(targets: Tensor) -> bool:
    """Integer targets are class labels (accuracy is defined); float targets are regression."""
    return not targets.is_floating_point()


class MetaLearner(nn.Module):
    """Base class of all algorithms: ``adapt`` a predictor to a support set; ``meta_loss`` over a batch.

    ``vmap=True`` runs a batch of tasks as one ``torch.func.vmap`` computation, ``False`` as a
    per-task loop, ``None`` chooses by device (the loop on CPU, where it measured 2x faster with
    2.4x less memory, see docs/PERFORMANCE.md; vmap on accelerators, unless the model has a
    recurrent layer, which vmap cannot run with per-task weights). Both give the same numbers:
    under vmap, batch, instance and layer norm are computed from elementary ops (PyTorch's fused
    kernels have wrong second-order gradients there) and random layers such as dropout draw a
    different mask per task.

    Any ``nn.Module`` works. Batch norm follows one policy (``fastadapt.nn.functional``): every
    forward pass normalizes with the statistics of its own batch (the support set while adapting,
    the query set when predicting), in training and eval mode alike, as MAML does; the running
    statistics of standard batch-norm layers are neither used nor updated. Dropout follows the
    module's mode: active while meta-training, off after ``eval()`` (``meta_test`` calls it).
    """

    name: ClassVar[str] = "metalearner"

    def __init__(self, loss: str | LossFn = "cross_entropy", vmap: bool | None = None) -> None:
        super().__init__()
        self.loss_fn = resolve_loss(loss)
        self.vmap = vmap

    def adapt(
        self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None, ways: int | None = None
    ) -> Predictor:
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

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """The parameters whose gradient norm ``train.grad_clip`` bounds, one group at a time: all of them together,
        unless the method's code clips its networks apart (Relation Networks)."""
        return [list(self.parameters())]

    def set_step(self, step: int) -> None:
        """Told by the trainer before each meta-update, for schedules inside an algorithm (MAML++)."""

    def check_distributable(self) -> None:
        """Refuse, in one line, training split over processes that each see a slice of every meta-batch (every
        learner allows it unless its training carries state from task to task)."""

    def training_batch(self, batch: TaskBatch) -> TaskBatch:
        """The batch that meta-training learns from: the sampled one, unless the method augments it
        (Siamese's affine distortions) or relabels it (FineTune's dataset classes)."""
        return batch

    def uses_vmap(self, batch: TaskBatch) -> bool:
        """Whether this batch runs under ``vmap``: as set, else off on CPU and for models vmap cannot run."""
        if self.vmap is False:
            return False
        layer = unbatchable_layer(self)
        if layer is not None and self.vmap:
            raise ConfigError(
                f"torch.func.vmap cannot run the recurrent layer {layer} with per-task weights: use vmap=False"
            )
        return self.vmap is True or (layer is None and batch.support_x.device.type != "cpu")

    def meta_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, float]]:
        """The meta-objective averaged over the batch, and the query ``loss`` (and ``accuracy``)."""
        batch = self.training_batch(batch)
        with self._running(batch):
            return self._batch_loss(batch)

    def _running(self, batch: TaskBatch) -> contextlib.AbstractContextManager[None]:
        """Checks the model once per batch and turns PyTorch's limits into one-line errors with the way out."""
        check_supported(self)
        return explained_errors(self.uses_vmap(batch))

    def _batch_loss(self, batch: TaskBatch) -> tuple[Tensor, dict[str, float]]:
        ways = batch_ways(batch)

        def one_task(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            objective, outputs = self.task_objective(sx, sy, qx, qy, ways)
            return (objective, *task_scores(self.loss_fn, outputs.detach(), qy))

        objective, losses, accuracies = self._map_tasks(one_task, batch)
        return objective.mean(), batch_metrics(losses, accuracies, batch.query_y)

    def meta_backward(self, batch: TaskBatch) -> tuple[float, dict[str, float]]:
        """Accumulate the gradient of ``meta_loss(batch)`` into ``.grad``; return its value and metrics.

        In the per-task loop each task's graph is differentiated and freed before the next task is
        run, so peak memory is that of one task rather than of the whole meta-batch (the trainer
        uses this); under vmap the batch is one graph and is differentiated at once.
        """
        batch = self.training_batch(batch)
        with self._running(batch):
            if self.uses_vmap(batch):
                loss, metrics = self._batch_loss(batch)
                loss.backward()
                return loss.item(), metrics
            return self._loop_backward(batch)

    def _loop_backward(self, batch: TaskBatch) -> tuple[float, dict[str, float]]:
        """``meta_backward`` as a per-task loop: each task's graph is freed before the next is built."""
        ways = batch_ways(batch)
        objectives, losses, accuracies = [], [], []
        for sx, sy, qx, qy in zip(batch.support_x, batch.support_y, batch.query_x, batch.query_y, strict=True):
            objective, outputs = self.task_objective(sx, sy, qx, qy, ways)
            (objective / len(batch)).backward()
            objectives.append(objective.detach())
            loss, accuracy = task_scores(self.loss_fn, outputs.detach(), qy)
            losses.append(loss)
            accuracies.append(accuracy)
        metrics = batch_metrics(torch.stack(losses), torch.stack(accuracies), batch.query_y)
        return torch.stack(objectives).mean().item(), metrics

    def evaluate(
        self, batch: TaskBatch, steps: int | None = None, statistics: str = "query", population: Moments | None = None
    ) -> dict[str, Tensor]:
        """Per-task query ``loss`` (and ``accuracy``) after adaptation, without a meta-gradient graph.

        Batch norm normalizes the queries with the statistics of their own batch (``statistics="query"``,
        the transductive MAML convention), of the support set (``"support"``), or of the support set plus
        each query on its own (``"support_and_query"``, Reptile's non-transductive protocol); see
        ``fastadapt.nn.functional.with_statistics``. ``"population"`` normalizes support and queries alike
        with the fixed moments ``population`` (``fastadapt.nn.population``), as eval-mode batch norm does.
        """
        check_statistics(statistics)
        ways = batch_ways(batch)
        fixed, statistics = normalization(self, statistics, population)

        def one_task(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> tuple[Tensor, Tensor]:
            predictor = with_statistics(self.adapt(sx, sy, steps=steps, ways=ways), sx, statistics)
            return task_scores(self.loss_fn, predictor(qx), qy)

        with torch.no_grad(), self._running(batch):
            losses, accuracies = self._map_tasks(one_task, batch, fixed)
        scores = {"loss": losses}
        if is_classification(batch.query_y):
            scores["accuracy"] = accuracies
        return scores

    def _map_tasks(
        self, fn: Callable[..., tuple[Tensor, ...]], batch: TaskBatch,
        normalization: contextlib.AbstractContextManager[None] | None = None,
    ) -> tuple[Tensor, ...]:
        """``fn`` on every task of ``batch``, under ``vmap`` or in a loop; ``normalization`` (a batch-norm mode) is
        entered innermost, so that it and not ``exact_normalization`` decides each layer's statistics."""
        inputs = (batch.support_x, batch.support_y, batch.query_x, batch.query_y)
        if self.uses_vmap(batch):
            with exact_normalization(), math_attention(), normalization or contextlib.nullcontext():
                return torch.func.vmap(fn, randomness="different")(*inputs)
        with normalization or contextlib.nullcontext():
            results = [fn(*task) for task in zip(*inputs, strict=True)]
        return tuple(torch.stack(column) for column in zip(*results, strict=True))


def batch_ways(batch: TaskBatch) -> int | None:
    if not is_classification(batch.support_y):
        return None
    return ways_of(batch.support_y)


def batch_metrics(losses: Tensor, accuracies: Tensor, query_y: Tensor) -> dict[str, float]:
    """The mean query ``loss`` of a batch's tasks, and their mean ``accuracy`` when they classify."""
    metrics = {"loss": losses.detach().mean().item()}
    if is_classification(query_y):
        metrics["accuracy"] = accuracies.mean().item()
    return metrics


def task_scores(loss_fn: LossFn, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Query loss and accuracy of one task (accuracy is 0 for regression, and not reported)."""
    loss = loss_fn(outputs, targets)
    if is_classification(targets):
        accuracy = (outputs.argmax(dim=-1) == targets).to(outputs.dtype).mean()
    else:
        accuracy = torch.zeros((), dtype=outputs.dtype, device=outputs.device)
    return loss, accuracy.detach()
