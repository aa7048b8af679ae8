"""Backbones: the shapes of the papers' networks and clear errors for the wrong input."""

from __future__ import annotations

import pytest
import torch

import fastadapt as fa
from fastadapt.nn import MLP, Conv4


@pytest.mark.parametrize(
    "kwargs, image, features",
    [
        (dict(in_channels=1, pool="max", image_size=28), (1, 28, 28), 64),  # ProtoNet Omniglot: 28-14-7-3-1
        (dict(in_channels=3, hidden=32, pool="max", image_size=84), (3, 84, 84), 32 * 5 * 5),  # MAML miniImageNet
        (dict(in_channels=1, pool="stride", image_size=28), (1, 28, 28), 64),  # MAML Omniglot: strided, spatial mean
    ],
)
def test_conv4_embedding_sizes(kwargs: dict, image: tuple[int, ...], features: int) -> None:
    encoder = Conv4(**kwargs)
    assert encoder.embedding_dim == features and encoder.head is None
    assert encoder(torch.rand(2, *image)).shape == (2, features)
    classifier = Conv4(out_features=5, **kwargs)
    assert classifier(torch.rand(2, *image)).shape == (2, 5)


def test_conv4_parameter_count_matches_the_paper_network() -> None:
    # 4 conv layers of 64 3x3 filters with batch-norm scale and shift, and a 64 -> 5 linear head
    expected = (9 * 64 + 64) + 3 * (9 * 64 * 64 + 64) + 4 * 2 * 64 + (64 * 5 + 5)
    assert sum(p.numel() for p in Conv4(1, 5, pool="stride").parameters()) == expected


def test_wrong_input_shape_is_named() -> None:
    with pytest.raises(ValueError, match=r"expects images of shape \[batch, 1, 28, 28\]"):
        Conv4()(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="expects inputs with 1 features"):
        MLP(1, 1)(torch.rand(4, 2))


def test_mlp_sinusoid_network() -> None:
    model = MLP(1, 1, hidden=(40, 40))
    assert model(torch.rand(10, 1)).shape == (10, 1)
    assert sum(p.numel() for p in model.parameters()) == (40 + 40) + (40 * 40 + 40) + (40 + 1)


@pytest.mark.parametrize("size, out", [(28, 640), (84, 640)])
def test_resnet12_embeds_images_of_any_benchmark_size(size: int, out: int) -> None:
    model = fa.nn.ResNet12(3, None, image_size=size)
    assert model(torch.rand(2, 3, size, size)).shape == (2, out)
    assert model.embedding_dim == out
    assert fa.nn.ResNet12(1, 5, widths=(8, 8, 16, 16), image_size=28)(torch.rand(3, 1, 28, 28)).shape == (3, 5)


def test_resnet12_blocks_are_residual() -> None:
    block = fa.nn.ResNet12(1, None, widths=(4, 4, 4, 4), image_size=16).body[0]
    x = torch.rand(2, 1, 16, 16)
    expected = torch.nn.functional.max_pool2d(torch.nn.functional.leaky_relu(block.convs(x) + block.shortcut(x), 0.1), 2)
    torch.testing.assert_close(block(x), expected)


def test_conv4_feature_maps_for_relation_networks() -> None:
    model = fa.nn.Conv4(1, None, hidden=8, image_size=28, downsample_blocks=2, feature_maps=True)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 8, 7, 7) and model.feature_shape == (8, 7, 7)
    with pytest.raises(ValueError, match="encoder"):
        fa.nn.Conv4(1, 5, feature_maps=True)
