"""The networks of the few-shot literature: an MLP (sinusoid regression) and Conv4 (images).

Every backbone is split into ``body`` (input -> features) and ``head`` (features -> outputs, or
absent for an embedding network), so that ANIL can adapt the head alone and metric methods can use
the body as an encoder.

Settings that a config or the data decide (the pooling, the image size, the input shape) raise
``ConfigError`` (a ``ValueError``); those only Python code sets raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastadapt.components import DatasetConfig, ModelConfig, Run, option, register
from fastadapt.errors import ConfigError
from fastadapt.nn.batchnorm import BatchNorm
from fastadapt.nn.init import Init, initialize

Activation = Literal["relu", "tanh"]
_ACTIVATIONS: dict[str, type[nn.Module]] = dict(zip(get_args(Activation), (nn.ReLU, nn.Tanh), strict=True))
Pool = Literal["max", "stride"]
Readout = Literal["auto", "mean", "flatten"]
Padding = Literal["torch", "tensorflow"]
PoolPadding = Literal["valid", "same"]
BlockOrder = Literal["conv-norm-relu-pool", "conv-pool-norm-relu"]
_POOLS: tuple[str, ...] = get_args(Pool)
_READOUTS: tuple[str, ...] = get_args(Readout)
_PADDINGS: tuple[str, ...] = get_args(Padding)
_POOL_PADDINGS: tuple[str, ...] = get_args(PoolPadding)
_BLOCK_ORDERS: tuple[str, ...] = get_args(BlockOrder)


class SpatialMean(nn.Module):
    """Average over the spatial dimensions: the readout of MAML's strided Omniglot network."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


class SameConv2d(nn.Conv2d):
    """A 3x3 convolution padded as TensorFlow's ``padding='same'``: the padding a stride needs for ``ceil(size /
    stride)`` outputs, the odd pixel after (bottom, right), where PyTorch's ``padding=1`` pads one on every side and
    so, at stride 2 on an even side, samples the image one pixel earlier."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, 3, stride=stride, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        stride, kernel = self.stride[0], self.kernel_size[0]
        pads: list[int] = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad lists the last dimension first
            total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


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
            raise ConfigError(
                f"MLP expects inputs with {self.in_features} features in the last dimension, "
                f"got shape {tuple(x.shape)}"
            )
        features = self.body(x)
        return self.head(features) if self.head is not None else features


def _block_sizes(size: int, pool: str, downsample_blocks: int, pool_padding: str, unpadded_blocks: int) -> list[int]:
    """The side of the map after each of the four blocks. An unpadded 3x3 convolution takes 2 pixels off; 2x2
    'valid' max pooling floors the half, 'same' pooling (the odd pixel pooled alone) and a padded stride-2
    convolution ceil it."""
    sizes = []
    for block in range(4):
        size -= 2 if block < unpadded_blocks else 0
        if block < downsample_blocks:
            size = size // 2 if pool == "max" and pool_padding == "valid" else (size + 1) // 2
        sizes.append(size)
    return sizes


def min_image_size(pool: str = "max", downsample_blocks: int = 4, pool_padding: str = "valid",
                   unpadded_blocks: int = 0) -> int:
    """The smallest image side that the four blocks leave at least one pixel wide (``2 ** blocks`` for 'valid' max
    pooling in padded blocks, 1 for strided ones; ``_block_sizes``)."""
    size = 1
    while min(_block_sizes(size, pool, downsample_blocks, pool_padding, unpadded_blocks)) < 1:
        size += 1
    return size


class Conv4(nn.Module):
    """The four-block convolutional network of the MAML and Prototypical Networks papers.

    Each block is a 3x3 convolution, batch norm (batch statistics), ReLU and a 2x down-sampling:
    2x2 max pooling (``pool="max"``, ProtoNet and MAML's miniImageNet network; the feature map is
    flattened) or a stride-2 convolution (``pool="stride"``, MAML's Omniglot network; the feature
    map is averaged over space). ``out_features=None`` makes it an embedding network.

    ``downsample_blocks`` (default 4) is how many blocks down-sample; ``feature_maps=True`` returns
    the last feature map ``[batch, hidden, s, s]`` itself (its shape in ``feature_shape``): the
    encoder of Relation Networks, which compare feature maps, is ``Conv4(downsample_blocks=2,
    feature_maps=True)``. ``bn_eps`` is batch norm's epsilon: PyTorch's 1e-5, or TensorFlow's 1e-3 (MAML's and
    Reptile's code), and ``bn_scale=False`` learns no scale (MAML's code). ``readout`` overrides the pooling's usual
    readout (``mean`` over space, or ``flatten``: Reptile's strided network flattens its 2x2x64 map), and
    ``padding="tensorflow"`` pads the convolutions as TensorFlow's ``'same'`` (``SameConv2d``), as MAML's and
    Reptile's networks are. ``pool_padding="same"`` keeps an odd last row and column in 2x2 max pooling (pooled
    alone, as TensorFlow's ``'same'``: 84, 42, 21, 11, 6) where ``"valid"`` drops it (84, 42, 21, 10, 5), and
    ``block_order="conv-pool-norm-relu"`` pools before batch norm, which then normalizes with the pooled map's
    statistics: both as Reptile's miniImageNet network. (Pooling before or after the ReLU is the same function.)
    ``unpadded_blocks=2`` leaves the first two convolutions unpadded, as Relation Networks' encoder (28, 26, 13, 11,
    5: 64 x 5 x 5 maps, where padded blocks leave 7 x 7).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_features: int | None = None,
        hidden: int = 64,
        pool: str = "max",
        image_size: int = 28,
        downsample_blocks: int = 4,
        feature_maps: bool = False,
        bn_eps: float = 1e-5,
        readout: str = "auto",
        padding: str = "torch",
        bn_scale: bool = True,
        pool_padding: str = "valid",
        block_order: str = "conv-norm-relu-pool",
        unpadded_blocks: int = 0,
    ) -> None:
        super().__init__()
        _check_conv4(pool, downsample_blocks, feature_maps, out_features, readout, padding)
        _check_pooling(pool, pool_padding, block_order, padding, unpadded_blocks)
        smallest = min_image_size(pool, downsample_blocks, pool_padding, unpadded_blocks)
        if image_size < smallest:
            raise ConfigError(f"Conv4 (pool={pool!r}) needs images of at least {smallest}x{smallest} pixels, "
                              f"got image_size={image_size}")
        layers: list[nn.Module] = []
        channels = in_channels
        for block in range(4):
            down = block < downsample_blocks
            conv = _conv(channels, hidden, 2 if pool == "stride" and down else 1,
                         "none" if block < unpadded_blocks else padding)
            pooling = [nn.MaxPool2d(2, ceil_mode=pool_padding == "same")] if pool == "max" and down else []
            norm = BatchNorm(hidden, bn_eps, bn_scale)
            layers += ([conv, *pooling, norm, nn.ReLU()] if block_order == "conv-pool-norm-relu"
                       else [conv, norm, nn.ReLU(), *pooling])
            channels = hidden
        size = _block_sizes(image_size, pool, downsample_blocks, pool_padding, unpadded_blocks)[-1]
        self.feature_shape = (hidden, size, size)
        if feature_maps:
            self.embedding_dim = hidden * size * size
        elif readout == "mean" or (readout == "auto" and pool == "stride"):
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
        if (
            x.dim() != 4 or x.shape[1] != self.in_channels
            or x.shape[-1] != self.image_size or x.shape[-2] != self.image_size
        ):
            raise ConfigError(
                f"Conv4 expects images of shape [batch, {self.in_channels}, {self.image_size}, "
                f"{self.image_size}], got {tuple(x.shape)}; build it with the dataset's channels and image_size"
            )
        features = self.body(x)
        return self.head(features) if self.head is not None else features


def _check_conv4(
    pool: str, downsample_blocks: int, feature_maps: bool, out_features: int | None, readout: str, padding: str
) -> None:
    """Refuse Conv4 settings that name no network (``ConfigError`` where a config sets them)."""
    if pool not in _POOLS:
        raise ConfigError(f"Conv4 pool must be one of {_POOLS}, got {pool!r}")
    if readout not in _READOUTS:
        raise ConfigError(f"Conv4 readout must be one of {_READOUTS}, got {readout!r}")
    if padding not in _PADDINGS:
        raise ConfigError(f"Conv4 padding must be one of {_PADDINGS}, got {padding!r}")
    if not 0 <= downsample_blocks <= 4:
        raise ValueError(f"Conv4 downsample_blocks must be between 0 and 4, got {downsample_blocks!r}")
    if feature_maps and (out_features or readout != "auto"):
        raise ValueError("Conv4(feature_maps=True) is an encoder of feature maps: leave out_features=None and "
                         "readout='auto'")


def _check_pooling(pool: str, pool_padding: str, block_order: str, padding: str, unpadded_blocks: int) -> None:
    """Refuse pooling and padding settings that name no network."""
    if pool_padding not in _POOL_PADDINGS:
        raise ConfigError(f"Conv4 pool_padding must be one of {_POOL_PADDINGS}, got {pool_padding!r}")
    if block_order not in _BLOCK_ORDERS:
        raise ConfigError(f"Conv4 block_order must be one of {_BLOCK_ORDERS}, got {block_order!r}")
    if pool == "stride" and (pool_padding, block_order) != ("valid", "conv-norm-relu-pool"):
        raise ConfigError("Conv4 pool_padding and block_order place 2x2 max pooling: with pool='stride' there is "
                          "none; set pool='max' or leave them at their defaults")
    if not 0 <= unpadded_blocks <= 4:
        raise ConfigError(f"Conv4 unpadded_blocks must be between 0 and 4, got {unpadded_blocks!r}")
    if unpadded_blocks and (pool, padding) != ("max", "torch"):
        raise ConfigError("Conv4 unpadded_blocks is for max-pooled blocks padded as PyTorch (Relation Networks' "
                          "encoder): set pool='max' and padding='torch', or unpadded_blocks=0")


def _conv(channels: int, hidden: int, stride: int, padding: str) -> nn.Conv2d:
    """A block's 3x3 convolution: padded as PyTorch (one pixel on every side), as TensorFlow's ``'same'``, or
    (``"none"``) not at all."""
    if padding == "tensorflow":
        return SameConv2d(channels, hidden, stride)
    return nn.Conv2d(channels, hidden, 3, stride=stride, padding=0 if padding == "none" else 1)


class ResidualBlock(nn.Module):
    """ResNet-12's block: three 3x3 conv-BN layers with leaky ReLU (0.1), a 1x1 conv-BN shortcut,
    and 2x2 max pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        for i in range(3):
            convs += [
                nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=False),
                BatchNorm(out_channels),
            ]
            if i < 2:
                convs.append(nn.LeakyReLU(0.1))
        self.convs = nn.Sequential(*convs)
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), BatchNorm(out_channels))
        self.out = nn.Sequential(nn.LeakyReLU(0.1), nn.MaxPool2d(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.convs(x) + self.shortcut(x))


class ResNet12(nn.Module):
    """The ResNet-12 of TADAM and MetaOptNet: four residual blocks of widths 64-160-320-640, each
    halving the feature map, then a spatial mean (a 640-dimensional embedding). Batch norm uses
    batch statistics, as in Conv4."""

    def __init__(
        self,
        in_channels: int = 3,
        out_features: int | None = None,
        widths: Sequence[int] = (64, 160, 320, 640),
        image_size: int = 84,
    ) -> None:
        super().__init__()
        if len(widths) != 4 or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(f"ResNet12 widths must be four positive integers, got {widths!r}")
        smallest = min_image_size("max", len(widths))
        if image_size < smallest:
            raise ConfigError(
                f"ResNet12 needs images of at least {smallest}x{smallest} pixels, got image_size={image_size}"
            )
        blocks = [ResidualBlock(a, b) for a, b in zip((in_channels, *widths[:3]), widths, strict=True)]
        self.in_channels = in_channels
        self.image_size = image_size
        self.embedding_dim = widths[-1]
        self.body = nn.Sequential(*blocks, SpatialMean())
        self.head = nn.Linear(self.embedding_dim, out_features) if out_features else None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"ResNet12 expects images of shape [batch, {self.in_channels}, H, W], got {tuple(x.shape)}; "
                "build it with the dataset's channels"
            )
        features = self.body(x)
        return self.head(features) if self.head is not None else features


def _image_shape(data: DatasetConfig) -> tuple[int, int]:
    """The channels and side of the dataset's images (the image models read only image datasets)."""
    preprocessing = data.preprocessing()
    if preprocessing is None:
        raise ValueError(f"the {data.name} dataset has no images")
    return preprocessing.channels, preprocessing.image_size


@dataclass
class BackboneConfig(ModelConfig):
    """A built-in backbone; ``init`` is how its weights start (``fastadapt.nn.init``: PyTorch's defaults, ``glorot``
    as TensorFlow's, or ``maml`` as the MAML code's)."""

    init: Init = "torch"

    def finish(self, model: nn.Module) -> nn.Module:
        return initialize(model, self.init)


@dataclass
class ImageModelConfig(BackboneConfig):
    """A built-in image backbone; ``channels_last`` stores its weights and activations NHWC (faster on GPUs)."""

    channels_last: bool = False

    def finish(self, model: nn.Module) -> nn.Module:
        model = super().finish(model)
        # torch's stubs omit Module.to's memory_format keyword, which it accepts (documented in Module.to)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model  # type: ignore[call-overload]


@register("model", "conv4")
@dataclass
class Conv4Config(ImageModelConfig):
    """Conv4 with ``hidden`` channels per block, ``pool`` (2x2 max pooling or stride-2 convolutions), batch norm's
    ``bn_eps`` and ``bn_scale``, its ``readout``, ``padding``, ``pool_padding``, ``block_order`` and
    ``unpadded_blocks`` (see ``Conv4``; presets that follow a paper's code set them as it)."""

    hidden: int = option(64, minimum=1)
    pool: Pool = "max"
    bn_eps: float = option(1e-5, minimum=1e-12)
    bn_scale: bool = True
    readout: Readout = "auto"
    padding: Padding = "torch"
    pool_padding: PoolPadding = "valid"
    block_order: BlockOrder = "conv-norm-relu-pool"
    unpadded_blocks: int = option(0, minimum=0)

    def build(self, data: DatasetConfig, out_features: int | None, options: dict[str, Any]) -> nn.Module:
        channels, size = _image_shape(data)
        model = Conv4(channels, out_features, self.hidden, self.pool, size, bn_eps=self.bn_eps, readout=self.readout,
                      padding=self.padding, bn_scale=self.bn_scale, pool_padding=self.pool_padding,
                      block_order=self.block_order, unpadded_blocks=self.unpadded_blocks, **options)
        return self.finish(model)

    def check(self, run: Run) -> None:
        preprocessing = run.dataset.preprocessing()
        blocks = run.algorithm.backbone_options.get("downsample_blocks", 4)
        smallest = min_image_size(self.pool, blocks, self.pool_padding, self.unpadded_blocks)
        if preprocessing is not None and preprocessing.image_size < smallest:
            raise ConfigError(
                f"model.name=conv4 with pool={self.pool} and {blocks} down-sampling blocks needs images of "
                f"at least {smallest} pixels, got dataset.image_size={preprocessing.image_size}"
            )


@register("model", "resnet12")
@dataclass
class ResNet12Config(ImageModelConfig):
    """ResNet-12 (640-dimensional embeddings, or a linear head)."""

    def build(self, data: DatasetConfig, out_features: int | None, options: dict[str, Any]) -> nn.Module:
        channels, size = _image_shape(data)
        return self.finish(ResNet12(channels, out_features, image_size=size))


@register("model", "mlp")
@dataclass
class MLPConfig(BackboneConfig):
    """An MLP with hidden ``layers`` widths, for vector data (the sinusoid's scalar inputs)."""

    inputs = "vectors"
    layers: list[int] = option([40, 40])

    def validate(self) -> None:
        if not all(width > 0 for width in self.layers):
            raise ConfigError(f"model.layers must be a list of positive integers, got {self.layers!r}")

    def build(self, data: DatasetConfig, out_features: int | None, options: dict[str, Any]) -> nn.Module:
        return self.finish(MLP(getattr(data, "features", 1), out_features, hidden=self.layers))
