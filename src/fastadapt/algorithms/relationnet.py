"""Relation networks (Sung et al. 2018): a learned comparison of query and class feature maps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastadapt.algorithms.base import MetaLearner, Predictor
from fastadapt.components import AlgorithmConfig, Run, register
from fastadapt.errors import ConfigError
from fastadapt.nn.backbones import min_image_size
from fastadapt.nn.batchnorm import BatchNorm
from fastadapt.nn.functional import call
from fastadapt.nn.init import initialize
from fastadapt.tasks import ways_of


def relation_mse(scores: Tensor, labels: Tensor) -> Tensor:
    """The paper's loss: mean squared error between relation scores and the one-hot labels."""
    return F.mse_loss(scores, F.one_hot(labels, scores.shape[-1]).to(scores.dtype))


class RelationModule(nn.Module):
    """``g``: two conv-BN-ReLU-maxpool blocks over a concatenated pair of feature maps, then two
    fully connected layers to a relation score in (0, 1)."""

    def __init__(self, feature_shape: tuple[int, int, int], hidden: int = 8) -> None:
        super().__init__()
        channels, size, _ = feature_shape
        smallest = min_image_size("max", 2)
        if size < smallest:
            raise ConfigError(
                f"the relation module pools twice and needs feature maps of at least {smallest}x{smallest}, got "
                f"{feature_shape}: down-sample less in the encoder (e.g. Conv4(downsample_blocks=2, feature_maps=True))"
            )
        layers: list[nn.Module] = []
        width = 2 * channels
        for _ in range(2):
            layers += [nn.Conv2d(width, channels, 3, padding=1), BatchNorm(channels), nn.ReLU(), nn.MaxPool2d(2)]
            width, size = channels, size // 2
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(channels * size * size, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, pairs: Tensor) -> Tensor:
        return torch.sigmoid(self.fc(self.convs(pairs))).squeeze(-1)


class RelationNet(MetaLearner):
    """Score each (query, class) pair with a learned relation module; predict the highest score.

    ``encoder`` maps inputs to feature maps ``[batch, C, H, W]`` and has ``feature_shape``
    (``fastadapt.nn.Conv4(downsample_blocks=2, feature_maps=True)``). A class's feature map is the sum
    of its support examples' (the paper's k-shot rule). Outputs are relation scores in (0, 1),
    trained by mean squared error against the one-hot labels.
    """

    name = "relationnet"

    def __init__(self, encoder: nn.Module, vmap: bool | None = None, relation_hidden: int = 8) -> None:
        super().__init__(loss=relation_mse, vmap=vmap)
        shape = getattr(encoder, "feature_shape", None)
        if not (isinstance(shape, tuple) and len(shape) == 3):
            raise ConfigError("RelationNet needs an encoder of feature maps with feature_shape (C, H, W), "
                              "e.g. fastadapt.nn.Conv4(downsample_blocks=2, feature_maps=True)")
        self.encoder = encoder
        self.relation = RelationModule(shape, relation_hidden)

    def adapt(
        self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None, ways: int | None = None
    ) -> Predictor:
        if ways is None:
            ways = ways_of(support_y)
        support = call(self.encoder, support_x)
        one_hot = F.one_hot(support_y, ways).to(support.dtype)
        classes = (one_hot.T @ support.flatten(1)).view(ways, *support.shape[1:])

        def predict(x: Tensor) -> Tensor:
            query = call(self.encoder, x)
            n = query.shape[0]
            pairs = torch.cat(
                [classes.expand(n, *classes.shape), query[:, None].expand(n, ways, *query.shape[1:])], dim=2
            )
            return self.relation(pairs.flatten(0, 1)).view(n, ways)

        return predict

    def probabilities(self, outputs: Tensor) -> Tensor:
        return outputs / outputs.sum(dim=-1, keepdim=True)

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """The encoder and the relation module, clipped apart as Sung et al.'s code clips them."""
        return [list(self.encoder.parameters()), list(self.relation.parameters())]


@register("algorithm", "relationnet")
@dataclass
class RelationNetConfig(AlgorithmConfig):
    """Relation Networks, on a Conv4 that keeps its feature maps (two down-sampling blocks, as in the paper); the
    relation module starts as ``model.init`` draws the encoder (``fastadapt.nn.init``)."""

    learner = RelationNet
    backbone_options = {"downsample_blocks": 2, "feature_maps": True}

    def build(self, model: nn.Module, run: Run) -> nn.Module:
        """The learner, its relation module's weights drawn as the encoder's (``model.init``), as the code draws
        both networks alike."""
        learner = RelationNet(model, **self.options())
        initialize(learner.relation, getattr(run.model, "init", "torch"))
        return learner

    def check(self, run: Run) -> None:
        if run.model.name not in ("conv4", "custom"):
            raise ConfigError(
                "relationnet compares feature maps and is built on model.name=conv4 (or your model.target)"
            )
