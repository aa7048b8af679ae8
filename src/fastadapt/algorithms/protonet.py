"""Prototypical networks (Snell et al. 2017): the meta-knowledge is an embedding space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch.nn.functional as F
from torch import Tensor, nn

from fastadapt.algorithms.base import MetaLearner, Predictor
from fastadapt.algorithms.temperature import Temperature
from fastadapt.components import AlgorithmConfig, option, register
from fastadapt.errors import ConfigError
from fastadapt.nn.functional import call
from fastadapt.tasks import ways_of

Distance = Literal["euclidean", "cosine"]
DISTANCES: tuple[str, ...] = get_args(Distance)


def prototypes(embeddings: Tensor, labels: Tensor, ways: int) -> Tensor:
    """The mean embedding of each class, ``[ways, dim]`` (written as a matrix product so it vmaps)."""
    one_hot = F.one_hot(labels, ways).to(embeddings.dtype)
    return (one_hot.T @ embeddings) / one_hot.sum(dim=0)[:, None]


def squared_distances(x: Tensor, centers: Tensor) -> Tensor:
    """``[n, k]`` squared Euclidean distances between rows of ``x`` and ``centers``."""
    return (x[:, None, :] - centers[None, :, :]).pow(2).sum(dim=-1)


def cosine_similarities(x: Tensor, centers: Tensor) -> Tensor:
    """``[n, k]`` cosine similarities between rows of ``x`` and ``centers``."""
    return F.normalize(x, dim=-1) @ F.normalize(centers, dim=-1).T


class ProtoNet(MetaLearner):
    """Classify a query by the nearest class mean of the support embeddings.

    The logits are the negative squared Euclidean distances to the prototypes (the paper), or with
    ``distance="cosine"`` their cosine similarities; either is divided by ``temperature``, which
    ``learn_temperature=True`` makes a trained parameter (the metric scaling of Oreshkin et al.
    2018, which cosine similarities in [-1, 1] need to give confident predictions). ``encoder``
    maps a batch of inputs to ``[batch, dim]`` embeddings (e.g. ``fastadapt.nn.Conv4()`` with no head).
    """

    name = "protonet"

    def __init__(
        self,
        encoder: nn.Module,
        vmap: bool | None = None,
        distance: str = "euclidean",
        temperature: float = 1.0,
        learn_temperature: bool = False,
    ) -> None:
        super().__init__(loss="cross_entropy", vmap=vmap)
        if distance not in DISTANCES:
            raise ConfigError(f"ProtoNet distance must be one of {DISTANCES}, got {distance!r}")
        self.encoder = encoder
        self.distance = distance
        self.temperature = Temperature(temperature, learn_temperature)

    def logits(self, embeddings: Tensor, centers: Tensor) -> Tensor:
        """Class scores of query ``embeddings`` against ``centers``."""
        if self.distance == "cosine":
            similarity = cosine_similarities(embeddings, centers)
        else:
            similarity = -squared_distances(embeddings, centers)
        return self.temperature(similarity)

    def adapt(
        self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None, ways: int | None = None
    ) -> Predictor:
        if ways is None:
            ways = ways_of(support_y)
        centers = prototypes(call(self.encoder, support_x), support_y, ways)
        return lambda x: self.logits(call(self.encoder, x), centers)


@register("algorithm", "protonet")
@dataclass
class ProtoNetConfig(AlgorithmConfig):
    """Prototypical Networks: the ``distance`` to the class means and the softmax ``temperature``."""

    learner = ProtoNet
    distance: Distance = "euclidean"
    temperature: float = option(1.0, minimum=1e-6)
    learn_temperature: bool = False
