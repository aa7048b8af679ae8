"""The networks of the few-shot literature: an MLP (sinusoid regression) and Conv4 (images).

Every backbone is split into ``body`` (input -> features) and ``head`` (features -> outputs, or
absent for an embedding network), so that ANIL can adapt the head alone and metric methods can use
the body as an encoder.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from fastadapt.nn.batchnorm import BatchNorm

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
_POOLS = ("max", "stride")


class SpatialMean(nn.Module):
    """Average over the spatial dimensions: the readout of MAML's strided Omniglot network."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


class MLP(nn.Module):
    """A fully connected network; MAML's sinusoid model is ``MLP(1, 1, hidden=(40, 40))``."""

    def __init__(
        self,
        in_features: int,
        out_features: int | None,
        hidden: Sequence[int] = (40, 40),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"MLP activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), _ACTIVATIONS[activation]()]
            width = size
        self.in_features = in_features
        self.embedding_dim = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features) if out_features else None

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"MLP expects inputs with {self.in_features} features in the last dimension, "
                f"got shape {tuple(x.shape)}"
            )
        features = self.body(x)
        return self.head(features) if self.head is not None else features


def _conv_output_size(size: int, pool: str) -> int:
    # max pool: 3x3 conv (padding 1) keeps the size, 2x2 pooling floors it; stride 2 with padding 1 ceils it.
    return size // 2 if pool == "max" else (size + 1) // 2


class Conv4(nn.Module):
    """The four-block convolutional network of the MAML and Prototypical Networks papers.

    Each block is a 3x3 convolution, batch norm (batch statistics), ReLU and a 2x down-sampling:
    2x2 max pooling (``pool="max"``, ProtoNet and MAML's miniImageNet network; the feature map is
    flattened) or a stride-2 convolution (``pool="stride"``, MAML's Omniglot network; the feature
    map is averaged over space). ``out_features=None`` makes it an embedding network.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_features: int | None = None,
        hidden: int = 64,
        pool: str = "max",
        image_size: int = 28,
    ) -> None:
        super().__init__()
        if pool not in _POOLS:
            raise ValueError(f"Conv4 pool must be one of {_POOLS}, got {pool!r}")
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for _ in range(4):
            stride = 2 if pool == "stride" else 1
            layers += [nn.Conv2d(channels, hidden, 3, stride=stride, padding=1), BatchNorm(hidden), nn.ReLU()]
            if pool == "max":
                layers.append(nn.MaxPool2d(2))
            channels, size = hidden, _conv_output_size(size, pool)
        if size < 1:
            raise ValueError(f"Conv4 needs images of at least 16x16 pixels, got image_size={image_size}")
        if pool == "stride":
            layers.append(SpatialMean())
            self.embedding_dim = hidden
        else:
            layers.append(nn.Flatten())
            self.embedding_dim = hidden * size * size
        self.in_channels = in_channels
        self.image_size = image_size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(self.embedding_dim, out_features) if out_features else None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(
                f"Conv4 expects images of shape [batch, {self.in_channels}, {self.image_size}, "
                f"{self.image_size}], got {tuple(x.shape)}; build it with the dataset's channels and image_size"
            )
        features = self.body(x)
        return self.head(features) if self.head is not None else features
