"""Prototypical networks (Snell et al. 2017): the meta-knowledge is an embedding space."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from fastadapt.algorithms.base import MetaLearner, Predictor


def prototypes(embeddings: Tensor, labels: Tensor, ways: int) -> Tensor:
    """The mean embedding of each class, ``[ways, dim]`` (written as a matrix product so it vmaps)."""
    one_hot = F.one_hot(labels, ways).to(embeddings.dtype)
    return (one_hot.T @ embeddings) / one_hot.sum(dim=0)[:, None]


def squared_distances(x: Tensor, centers: Tensor) -> Tensor:
    """``[n, k]`` squared Euclidean distances between rows of ``x`` and ``centers``."""
    return (x[:, None, :] - centers[None, :, :]).pow(2).sum(dim=-1)


class ProtoNet(MetaLearner):
    """Classify a query by the nearest class mean of the support embeddings.

    The logits are the negative squared Euclidean distances to the prototypes; ``encoder`` maps a
    batch of inputs to ``[batch, dim]`` embeddings (e.g. ``fastadapt.nn.Conv4()`` with no head).
    """

    name = "protonet"

    def __init__(self, encoder: nn.Module, vmap: bool | None = None) -> None:
        super().__init__(loss="cross_entropy", vmap=vmap)
        self.encoder = encoder

    def adapt(self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None, ways: int | None = None) -> Predictor:
        if ways is None:
            ways = int(support_y.max()) + 1
        centers = prototypes(self.encoder(support_x), support_y, ways)
        return lambda x: -squared_distances(self.encoder(x), centers)
