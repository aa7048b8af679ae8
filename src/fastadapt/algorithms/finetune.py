"""The transfer-learning baseline (Chen et al. 2019, Baseline and Baseline++): pre-train, then fit a
new head on each support set."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastadapt.algorithms.base import MetaLearner, Predictor, embedding_size
from fastadapt.algorithms.inner_loop import first_order_loop
from fastadapt.algorithms.minibatches import epoch_batches, task_key
from fastadapt.algorithms.protonet import prototypes
from fastadapt.components import AlgorithmConfig, Run, option, register
from fastadapt.errors import ConfigError
from fastadapt.nn.functional import call
from fastadapt.nn.params import Params, momentum_step, parameter_dict
from fastadapt.tasks import TaskBatch, ways_of

Head = Literal["linear", "cosine"]
HEADS: tuple[str, ...] = get_args(Head)


class FineTune(MetaLearner):
    """Supervised pre-training of ``encoder`` on all meta-training classes; at test time a new
    head fitted on the support set by ``finetune_steps`` steps of gradient descent.

    ``head="linear"`` is Chen et al.'s Baseline (a new linear layer, initialized at zero);
    ``"cosine"`` is Baseline++ (cosine similarity to class weight vectors times ``scale``, both in
    pre-training and at test time, the new weights started at the support set's normalized class
    means). The body stays frozen unless ``finetune_body=True``, which adapts it too. Pre-training
    learns from the images of the sampled tasks with their dataset classes (``TaskBatch.classes``),
    i.e. class-balanced mini-batches; ``classes`` is the number of meta-training classes.
    ``embedding_dim`` is the size of the encoder's output (read from fastadapt's backbones).

    The fitting is ``torch.optim.SGD``'s arithmetic with ``finetune_momentum``, ``finetune_dampening`` and
    ``finetune_weight_decay`` (plain gradient descent by default), each step on the whole support set or, with
    ``finetune_batch``, on the next mini-batch of passes over it, each pass a fresh shuffle cut into batches (the
    last one short), drawn from the task itself. ``finetune_epochs`` counts passes instead of steps: Chen et al.
    fine-tune 100 epochs of mini-batches of 4 with SGD 0.01, momentum 0.9, dampening 0.9 and weight decay 1e-3.
    """

    name = "finetune"

    def __init__(
        self,
        encoder: nn.Module,
        classes: int,
        vmap: bool | None = None,
        head: str = "linear",
        scale: float = 10.0,
        finetune_steps: int = 100,
        finetune_lr: float = 0.1,
        finetune_body: bool = False,
        embedding_dim: int | None = None,
        finetune_momentum: float = 0.0,
        finetune_dampening: float = 0.0,
        finetune_weight_decay: float = 0.0,
        finetune_batch: int | None = None,
        finetune_epochs: int | None = None,
    ) -> None:
        super().__init__(loss="cross_entropy", vmap=vmap)
        if head not in HEADS:
            raise ConfigError(f"FineTune head must be one of {HEADS}, got {head!r}")
        dim = embedding_size(encoder, embedding_dim, "FineTune")
        if not isinstance(classes, int) or classes < 2:
            raise ConfigError(f"FineTune needs the number of meta-training classes (at least 2), got {classes!r}")
        if finetune_steps < 0 or finetune_lr <= 0:
            raise ConfigError(
                f"finetune_steps must be >= 0 and finetune_lr > 0, got {finetune_steps!r} and {finetune_lr!r}"
            )
        _check_fitting(finetune_momentum, finetune_dampening, finetune_weight_decay, finetune_batch, finetune_epochs)
        self.encoder = encoder
        self.head_kind = head
        self.scale = float(scale)
        self.finetune_steps = finetune_steps
        self.finetune_lr = float(finetune_lr)
        self.finetune_body = finetune_body
        self.optimizer = {"momentum": float(finetune_momentum), "dampening": float(finetune_dampening),
                          "weight_decay": float(finetune_weight_decay)}
        self.finetune_batch = finetune_batch
        self.finetune_epochs = finetune_epochs
        self.head = nn.Linear(dim, classes, bias=head == "linear")

    def head_logits(self, params: Params, features: Tensor) -> Tensor:
        """Class scores of ``features`` under head weights ``params`` (``weight``, and ``bias`` if linear)."""
        if self.head_kind == "cosine":
            return self.scale * F.normalize(features, dim=-1) @ F.normalize(params["weight"], dim=-1).T
        return features @ params["weight"].T + params["bias"]

    def training_batch(self, batch: TaskBatch) -> TaskBatch:
        if batch.classes is None:
            raise ConfigError(
                "FineTune pre-trains on dataset classes: sample tasks with FewShotTasks (which records them) "
                "or build TaskBatch(..., classes=...)"
            )
        if int(batch.classes.max()) >= self.head.out_features:
            raise ConfigError(
                f"tasks use dataset class {int(batch.classes.max())} but the pre-training head has "
                f"{self.head.out_features} classes: build FineTune with classes=<number of meta-training classes>"
            )
        return batch.replace_labels(batch.classes.gather(1, batch.support_y), batch.classes.gather(1, batch.query_y))

    def task_objective(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor, ways: int | None
    ) -> tuple[Tensor, Tensor]:
        logits = self.head_logits(parameter_dict(self.head), call(self.encoder, torch.cat([support_x, query_x])))
        objective = self.loss_fn(logits, torch.cat([support_y, query_y]))
        return objective, logits[len(support_x):]

    def adapt(
        self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None, ways: int | None = None
    ) -> Predictor:
        if ways is None:
            ways = ways_of(support_y)
        size = len(support_y)
        steps = self._steps(size) if steps is None else steps
        batches = None if self.finetune_batch is None else epoch_batches(
            task_key(support_x), size, self.finetune_batch, steps)
        with torch.no_grad():
            features = call(self.encoder, support_x)
        head = self._new_head(features, support_y, ways)
        if not self.finetune_body:
            fitted = first_order_loop(self.head_logits, head, features, support_y, self.loss_fn, steps, batches,
                                      self._step)[0][-1]
            return lambda x: self.head_logits(fitted, call(self.encoder, x))
        start = {**_prefixed("encoder.", parameter_dict(self.encoder)), **_prefixed("head.", head)}

        def forward(params: Params, x: Tensor) -> Tensor:
            features = call(self.encoder, x, _unprefixed("encoder.", params))
            return self.head_logits(_unprefixed("head.", params), features)

        fitted = first_order_loop(forward, start, support_x, support_y, self.loss_fn, steps, batches, self._step)[0][-1]
        return lambda x: forward(fitted, x)

    def _steps(self, size: int) -> int:
        """Fitting steps on a support set of ``size``: ``finetune_steps``, or ``finetune_epochs`` passes over it."""
        if self.finetune_epochs is None:
            return self.finetune_steps
        return self.finetune_epochs * -(-size // (self.finetune_batch or size))

    def _step(self, params: Params, grads: Params, buffers: Params, step: int) -> tuple[Params, Params]:
        """One step of the fitting optimizer (SGD with the momentum, dampening and weight decay set)."""
        return momentum_step(params, grads, buffers, dict.fromkeys(params, self.finetune_lr), **self.optimizer)

    def _new_head(self, features: Tensor, labels: Tensor, ways: int) -> Params:
        if self.head_kind == "cosine":
            return {"weight": prototypes(F.normalize(features, dim=-1), labels, ways)}
        return {"weight": features.new_zeros(ways, features.shape[-1]), "bias": features.new_zeros(ways)}


def _check_fitting(momentum: float, dampening: float, weight_decay: float, batch: int | None,
                   epochs: int | None) -> None:
    """Refuse, in one line, fitting settings torch's SGD or the mini-batches cannot take."""
    if momentum < 0 or not 0 <= dampening <= 1 or weight_decay < 0:
        raise ConfigError("finetune_momentum and finetune_weight_decay must be >= 0 and finetune_dampening in [0, 1], "
                          f"got {momentum!r}, {weight_decay!r} and {dampening!r}")
    for name, value, least in (("finetune_batch", batch, 1), ("finetune_epochs", epochs, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ConfigError(f"{name} must be an integer >= {least} (or None), got {value!r}")


def _prefixed(prefix: str, params: Params) -> Params:
    return {prefix + name: value.detach() for name, value in params.items()}


def _unprefixed(prefix: str, params: Params) -> Params:
    return {name[len(prefix):]: value for name, value in params.items() if name.startswith(prefix)}


@register("algorithm", "finetune")
@dataclass
class FineTuneConfig(AlgorithmConfig):
    """The transfer baseline: the ``head`` (``linear``: Baseline; ``cosine``: Baseline++ with ``scale``), fine-tuned
    by ``finetune_steps`` of ``finetune_lr`` (with the body if ``finetune_body``), SGD with the momentum, dampening
    and weight decay given, on mini-batches of ``finetune_batch`` (``None``: the whole support set) for
    ``finetune_epochs`` passes if given; ``classes`` is the number of meta-training classes, filled in from the
    training data when a run starts."""

    learner = FineTune
    head: Head = "linear"
    scale: float = option(10.0, minimum=1e-6)
    finetune_steps: int = option(100, minimum=0)
    finetune_lr: float = option(0.1, minimum=1e-9)
    finetune_body: bool = False
    finetune_momentum: float = option(0.0, minimum=0)
    finetune_dampening: float = option(0.0, minimum=0)
    finetune_weight_decay: float = option(0.0, minimum=0)
    finetune_batch: int | None = option(None, minimum=1)
    finetune_epochs: int | None = option(None, minimum=0)
    classes: int | None = option(None, minimum=2)

    def build(self, model: nn.Module, run: Run) -> nn.Module:
        if self.classes is None:
            raise ConfigError("finetune needs algorithm.classes, the number of meta-training classes (set when a run "
                              "starts)")
        return FineTune(model, **self.options())

    def settle(self, train_tasks: Any) -> FineTuneConfig:
        if self.classes is not None:
            return self
        return dataclasses.replace(self, classes=train_tasks.dataset.num_classes)
