"""Backbones: the shapes of the papers' networks and clear errors for the wrong input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import raises_misuse

import fastadapt as fa
from fastadapt.errors import ConfigError
from fastadapt.nn import MLP, Conv4
from fastadapt.nn.backbones import ResidualBlock, min_image_size


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


def test_data_that_does_not_fit_the_settings_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"expects images of shape \[batch, 1, 28, 28\]"):
        Conv4()(torch.rand(2, 3, 28, 28))
    with pytest.raises(ConfigError, match="expects inputs with 1 features"):
        MLP(1, 1)(torch.rand(4, 2))
    with pytest.raises(ConfigError, match=r"expects images of shape \[batch, 3, H, W\]"):
        fa.nn.ResNet12(3, None, widths=(4, 4, 4, 4), image_size=16)(torch.rand(2, 1, 16, 16))
    with pytest.raises(ConfigError, match="pool must be one of"):
        Conv4(pool="avg")


def test_arguments_only_python_code_passes_are_value_errors() -> None:
    with raises_misuse("activation must be one of"):
        MLP(1, 1, activation="gelu")
    with raises_misuse("downsample_blocks must be between 0 and 4"):
        Conv4(downsample_blocks=5)
    with raises_misuse("widths must be four positive integers"):
        fa.nn.ResNet12(widths=(8, 8, 8))


@pytest.mark.parametrize("pool", ["max", "stride"])
@pytest.mark.parametrize("blocks", [0, 2, 4])
def test_conv4_takes_images_down_to_its_true_minimum_size(pool: str, blocks: int) -> None:
    smallest = min_image_size(pool, blocks)
    model = Conv4(1, 3, hidden=4, pool=pool, image_size=smallest, downsample_blocks=blocks)
    assert model(torch.rand(2, 1, smallest, smallest)).shape == (2, 3)
    if smallest > 1:
        with pytest.raises(ConfigError, match=f"at least {smallest}x{smallest} pixels"):
            Conv4(1, 3, hidden=4, pool=pool, image_size=smallest - 1, downsample_blocks=blocks)
    assert smallest == (16 if (pool, blocks) == ("max", 4) else 4 if (pool, blocks) == ("max", 2) else 1)


def test_resnet12_takes_images_down_to_16_pixels() -> None:
    assert fa.nn.ResNet12(1, 2, widths=(4, 4, 4, 4), image_size=16)(torch.rand(2, 1, 16, 16)).shape == (2, 2)
    with pytest.raises(ConfigError, match="at least 16x16 pixels"):
        fa.nn.ResNet12(1, 2, widths=(4, 4, 4, 4), image_size=15)


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


def _shortcut_alone(block: ResidualBlock, x: torch.Tensor) -> torch.Tensor:
    """What a block outputs from its 1x1 shortcut alone, computed from its weights: convolution, batch norm on batch
    statistics, leaky ReLU (0.1) and 2x2 max pooling."""
    conv, norm = block.shortcut
    z = F.conv2d(x, conv.weight)
    mean, var = z.mean(dim=(0, 2, 3), keepdim=True), z.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    z = (z - mean) / torch.sqrt(var + norm.eps) * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
    return F.max_pool2d(F.leaky_relu(z, 0.1), 2)


def test_resnet12_blocks_add_a_shortcut_to_their_convolutions() -> None:
    block = fa.nn.ResNet12(1, None, widths=(4, 4, 4, 4), image_size=16).body[0]
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        silenced = block.convs[-1]  # the residual branch's last batch norm: scale and shift 0 make the branch 0
        silenced.weight.zero_()
        silenced.bias.zero_()
        torch.testing.assert_close(block(x), _shortcut_alone(block, x))  # the shortcut carries the input through
        silenced.weight.fill_(1.0)
        assert (block(x) - _shortcut_alone(block, x)).abs().max() > 0.1  # and the convolutions add to it
    block(x).sum().backward()
    assert block.convs[0].weight.grad.abs().sum() > 0 and block.shortcut[0].weight.grad.abs().sum() > 0


def test_conv4_feature_maps_for_relation_networks() -> None:
    model = fa.nn.Conv4(1, None, hidden=8, image_size=28, downsample_blocks=2, feature_maps=True)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 8, 7, 7) and model.feature_shape == (8, 7, 7)
    with raises_misuse("encoder"):
        fa.nn.Conv4(1, 5, feature_maps=True)


def test_conv4_batch_norm_epsilon_is_tensorflows_where_asked() -> None:
    """``bn_eps``: each block normalizes by sqrt(var + eps); against the formula on the first block's output."""
    torch.manual_seed(0)
    images = torch.rand(6, 1, 28, 28)
    for eps in (1e-5, 1e-3):
        model = Conv4(1, None, hidden=8, pool="stride", bn_eps=eps)
        conv = model.body[0](images)
        mean, var = conv.mean(dim=(0, 2, 3), keepdim=True), conv.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        torch.testing.assert_close(model.body[1](conv), (conv - mean) / torch.sqrt(var + eps))


def test_tensorflow_same_padding_puts_the_odd_pixel_after() -> None:
    """TensorFlow's 'same' at stride 2 on a side of 4: 1 pixel of padding, after, so the first window covers rows and
    columns 0-2 (PyTorch's padding=1 covers -1..1); on a side of 7 it pads 1 on each side, as PyTorch does."""
    from fastadapt.nn.backbones import SameConv2d

    conv = SameConv2d(1, 1, stride=2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    even = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert conv(even).shape == (1, 1, 2, 2)
    assert conv(even)[0, 0, 0, 0] == even[0, 0, :3, :3].sum()
    assert conv(even)[0, 0, 1, 1] == even[0, 0, 2:, 2:].sum()  # the last window reaches into the padding
    odd = torch.rand(1, 1, 7, 7)
    torch.testing.assert_close(conv(odd), F.conv2d(odd, conv.weight, conv.bias, stride=2, padding=1))


def test_conv4_readout_flattens_reptiles_strided_map() -> None:
    """Reptile's Omniglot network flattens the 2x2x64 map its strided blocks leave; MAML's averages it."""
    images = torch.rand(3, 1, 28, 28)
    reptile = Conv4(1, None, hidden=64, pool="stride", readout="flatten", padding="tensorflow")
    maml = Conv4(1, None, hidden=64, pool="stride", padding="tensorflow")
    assert reptile.embedding_dim == 256 and reptile(images).shape == (3, 256)
    assert maml.embedding_dim == 64 and maml(images).shape == (3, 64)
    with pytest.raises(ConfigError, match="readout must be one of"):
        Conv4(1, None, readout="sum")
    with pytest.raises(ValueError, match="readout='auto'"):
        Conv4(1, None, feature_maps=True, readout="flatten")


def test_conv4_tensorflow_padding_changes_what_the_strided_blocks_see() -> None:
    """The same weights under PyTorch's and TensorFlow's padding: same sizes, other sampled pixels."""
    from fastadapt.nn.backbones import SameConv2d

    torch.manual_seed(0)
    tensorflow = Conv4(1, 5, pool="stride", padding="tensorflow")
    torch_padded = Conv4(1, 5, pool="stride")
    torch_padded.load_state_dict(tensorflow.state_dict())  # the same parameter names either way
    assert all(isinstance(tensorflow.body[i], SameConv2d) for i in (0, 3, 6, 9))
    images = torch.rand(4, 1, 28, 28)
    assert tensorflow(images).shape == torch_padded(images).shape == (4, 5)
    assert not torch.allclose(tensorflow(images), torch_padded(images))


def test_conv4_without_a_batch_norm_scale_learns_only_the_shift() -> None:
    """tf.contrib.layers.batch_norm (MAML's code) defaults to scale=False: normalized, plus a learned shift."""
    model = Conv4(1, 5, hidden=8, pool="stride", bn_scale=False)
    norm = model.body[1]
    assert norm.weight is None and {name for name, _ in norm.named_parameters()} == {"bias"}
    with torch.no_grad():
        norm.bias.fill_(0.5)
    conv = model.body[0](torch.rand(6, 1, 28, 28))
    mean, var = conv.mean(dim=(0, 2, 3), keepdim=True), conv.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(norm(conv), (conv - mean) / torch.sqrt(var + 1e-5) + 0.5)
    assert set(model.state_dict()) == {name for name, _ in model.named_parameters()}  # nothing but the weights kept


def test_maml_differentiates_twice_through_a_batch_norm_without_a_scale() -> None:
    """Second-order MAML through scale-free batch norm: torch's double backward of batch_norm fails on weight=None,
    so the layer passes a constant one; the meta-gradient reaches every parameter."""
    torch.manual_seed(0)
    learner = fa.MAML(Conv4(1, 3, hidden=4, pool="stride", bn_scale=False), inner_lr=0.5, inner_steps=1)
    x, y = torch.rand(6, 1, 28, 28), torch.arange(3).repeat(2)
    batch = fa.TaskBatch(x[None, :3], y[None, :3], x[None, 3:], y[None, 3:])
    learner.meta_loss(batch)[0].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learner.parameters())


def _tensorflow_pooled_block(x: torch.Tensor, conv: torch.nn.Conv2d, eps: float) -> torch.Tensor:
    """Reptile's miniImageNet block from functional ops: 3x3 convolution ('same' at stride 1), 2x2 max pooling as
    TensorFlow's 'same' (an odd last row and column padded with -inf), batch norm on the pooled map's batch
    statistics (unit scale, zero shift as initialized), ReLU."""
    x = F.conv2d(x, conv.weight, conv.bias, padding=1)
    x = F.max_pool2d(F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), value=float("-inf")), 2)
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return F.relu((x - mean) / torch.sqrt(var + eps))


def test_conv4_pools_as_reptiles_minimagenet_network() -> None:
    """'same' pooling before batch norm keeps 84, 42, 21, 11, 6 (1152 features) and matches a reference built
    from functional ops; the default block pools after the ReLU and floors (84, 42, 21, 10, 5)."""
    torch.manual_seed(0)
    reptile = Conv4(3, None, hidden=32, image_size=84, bn_eps=1e-3, pool_padding="same",
                    block_order="conv-pool-norm-relu")
    assert reptile.feature_shape == (32, 6, 6) and reptile.embedding_dim == 1152
    assert Conv4(3, None, hidden=32, image_size=84).feature_shape == (32, 5, 5)
    images = torch.rand(5, 3, 84, 84)
    expected = images
    for conv in [m for m in reptile.body if isinstance(m, torch.nn.Conv2d)]:
        expected = _tensorflow_pooled_block(expected, conv, 1e-3)
    torch.testing.assert_close(reptile(images), expected.flatten(1))
    pooled_after = Conv4(3, None, hidden=32, image_size=84, bn_eps=1e-3, pool_padding="same")
    pooled_after.load_state_dict(dict(zip(pooled_after.state_dict(), reptile.state_dict().values(), strict=True)))
    assert not torch.allclose(pooled_after(images), reptile(images))  # batch norm sees other statistics


def test_same_pooling_keeps_the_odd_pixel_by_itself() -> None:
    """A 3x3 map pools to 2x2: the last window holds the corner pixel alone."""
    model = Conv4(1, None, hidden=1, image_size=3, downsample_blocks=1, pool_padding="same", feature_maps=True)
    pool = next(m for m in model.body if isinstance(m, torch.nn.MaxPool2d))
    grid = torch.tensor([[[[1.0, 5.0, 2.0], [3.0, 4.0, 9.0], [8.0, 0.0, 7.0]]]])
    torch.testing.assert_close(pool(grid), torch.tensor([[[[5.0, 9.0], [8.0, 7.0]]]]))
    assert min_image_size("max", 4, "same") == 1 and Conv4(1, 3, image_size=1, pool_padding="same")(
        torch.rand(2, 1, 1, 1)).shape == (2, 3)


def test_pooling_settings_without_max_pooling_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="pool_padding must be one of"):
        Conv4(pool_padding="full")
    with pytest.raises(ConfigError, match="block_order must be one of"):
        Conv4(block_order="pool-first")
    with pytest.raises(ConfigError, match="with pool='stride' there is none"):
        Conv4(pool="stride", block_order="conv-pool-norm-relu")


def test_conv4_unpadded_blocks_give_relation_networks_encoder() -> None:
    """Sung et al.'s Omniglot encoder from standard layers: the first two convolutions unpadded and pooled, the
    last two padded (28, 26, 13, 11, 5): the same weights give the same 64 x 5 x 5 maps."""
    from torch import nn

    torch.manual_seed(0)
    ours = Conv4(1, None, image_size=28, downsample_blocks=2, feature_maps=True, unpadded_blocks=2)
    assert ours.feature_shape == (64, 5, 5)
    reference = nn.Sequential(
        nn.Conv2d(1, 64, 3, padding=0), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=0), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
    )
    with torch.no_grad():
        for mine, theirs in zip(ours.parameters(), reference.parameters(), strict=True):
            theirs.copy_(mine)
    images = torch.rand(6, 1, 28, 28)
    torch.testing.assert_close(ours(images), reference.train()(images))
    assert min_image_size("max", 2, unpadded_blocks=2) == 10
    with pytest.raises(ConfigError, match="at least 10x10 pixels"):
        Conv4(1, None, image_size=9, downsample_blocks=2, feature_maps=True, unpadded_blocks=2)
    with pytest.raises(ConfigError, match="unpadded_blocks is for max-pooled blocks"):
        Conv4(pool="stride", unpadded_blocks=2)
