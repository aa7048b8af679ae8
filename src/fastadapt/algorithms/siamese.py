"""Siamese networks (Koch et al. 2015): a learned same/different verifier used for one-shot tasks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastadapt.algorithms.base import MetaLearner, Predictor, embedding_size
from fastadapt.augment import affine_distortions
from fastadapt.components import AlgorithmConfig, Run, register
from fastadapt.errors import ConfigError
from fastadapt.nn.functional import call
from fastadapt.tasks import TaskBatch, ways_of


class Siamese(MetaLearner):
    """Twin embeddings compared by a weighted L1 distance and a sigmoid: ``p(same | a, b)``.

    Training pairs every query with every support example of a task (same class or not) and
    minimizes the binary cross-entropy, same and different pairs weighted equally as in the
    paper's balanced pairs; ``distortions=True`` applies the paper's random affine distortions to
    the training images. A task is solved by the most similar support example (one-shot) or the
    class of highest mean similarity (k-shot); the predictor returns the log of that similarity.
    ``encoder`` maps inputs to ``[batch, dim]``; ``embedding_dim`` is ``dim`` (read from fastadapt's backbones).
    """

    name = "siamese"

    def __init__(
        self, encoder: nn.Module, vmap: bool | None = None, distortions: bool = False, embedding_dim: int | None = None
    ) -> None:
        super().__init__(loss="cross_entropy", vmap=vmap)
        dim = embedding_size(encoder, embedding_dim, "Siamese")
        self.encoder = encoder
        self.verifier = nn.Linear(dim, 1)
        self.distortions = distortions

    def pair_logits(self, a: Tensor, b: Tensor) -> Tensor:
        """``[n, m]`` logits of ``p(same)`` for every pair of rows of ``a`` and ``b``."""
        return self.verifier((a[:, None, :] - b[None, :, :]).abs()).squeeze(-1)

    @staticmethod
    def class_scores(pair_logits: Tensor, support_y: Tensor, ways: int) -> Tensor:
        """Log mean ``p(same)`` of each query with each class's support examples, ``[n, ways]``."""
        one_hot = F.one_hot(support_y, ways).to(pair_logits.dtype)
        mean = (torch.sigmoid(pair_logits) @ one_hot) / one_hot.sum(dim=0)
        return mean.clamp_min(torch.finfo(mean.dtype).tiny).log()

    def adapt(
        self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None, ways: int | None = None
    ) -> Predictor:
        if ways is None:
            ways = ways_of(support_y)
        support = call(self.encoder, support_x)
        return lambda x: self.class_scores(self.pair_logits(call(self.encoder, x), support), support_y, ways)

    def task_objective(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor, ways: int | None
    ) -> tuple[Tensor, Tensor]:
        if ways is None:
            ways = ways_of(support_y)
        logits = self.pair_logits(call(self.encoder, query_x), call(self.encoder, support_x))
        same = (query_y[:, None] == support_y[None, :]).to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, same, reduction="none")
        different = 1 - same
        objective = (
            0.5 * (bce * same).sum() / same.sum().clamp_min(1)
            + 0.5 * (bce * different).sum() / different.sum().clamp_min(1)
        )
        return objective, self.class_scores(logits, support_y, ways)

    def training_batch(self, batch: TaskBatch) -> TaskBatch:
        if not self.distortions:
            return batch
        return TaskBatch(
            affine_distortions(batch.support_x), batch.support_y,
            affine_distortions(batch.query_x), batch.query_y, batch.classes,
        )


@register("algorithm", "siamese")
@dataclass
class SiameseConfig(AlgorithmConfig):
    """Siamese networks; ``distortions`` adds Koch et al.'s affine distortions of the training pairs' images."""

    learner = Siamese
    distortions: bool = False

    def check(self, run: Run) -> None:
        if self.distortions and run.dataset.inputs != "images":
            raise ConfigError(
                f"algorithm.distortions transforms images of the built-in datasets, not {run.dataset.name} "
                "data: transform it in your dataset (its factory is told the split)"
            )
