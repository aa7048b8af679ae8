"""Running any module as a pure function: the batch-norm policy, exact normalization under vmap,
and PyTorch's limits turned into one-line errors."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from torch.func import grad, vmap

from fastadapt.errors import ConfigError
from fastadapt.nn import call, exact_normalization, running_stat_overrides
from fastadapt.nn.functional import check_supported, explained_errors, unbatchable_layer

# Each norm behind a layer that mixes its input: the defect is in the gradient that flows to the input.
NORMS = {
    "batch_norm_1d": (lambda: nn.Sequential(nn.Conv1d(3, 3, 1), nn.BatchNorm1d(3)), (6, 3, 5)),
    "batch_norm_2d": (lambda: nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)), (6, 3, 4, 4)),
    "batch_norm_3d": (lambda: nn.Sequential(nn.Conv3d(3, 3, 1), nn.BatchNorm3d(3)), (6, 3, 2, 3, 3)),
    "instance_norm_2d": (lambda: nn.Sequential(nn.Conv2d(3, 3, 1), nn.InstanceNorm2d(3, affine=True)), (6, 3, 4, 4)),
    "layer_norm": (lambda: nn.Sequential(nn.Linear(5, 5), nn.LayerNorm(5)), (6, 3, 5)),
    "layer_norm_2d_shape": (lambda: nn.Sequential(nn.Linear(5, 5), nn.LayerNorm((3, 5))), (6, 3, 5)),
}


def _randomized(layer: nn.Module) -> nn.Module:
    layer = layer.double()
    with torch.no_grad():
        for p in layer.parameters():
            p.uniform_(0.5, 1.5)
    return layer


@pytest.mark.parametrize("name", sorted(NORMS))
def test_elementary_normalization_equals_the_fused_kernels(name: str) -> None:
    make, shape = NORMS[name]
    layer = _randomized(make())
    x = torch.randn(*shape, dtype=torch.float64) * 2 + 1
    fused = call(layer, x)
    with exact_normalization():
        elementary = call(layer, x)
    torch.testing.assert_close(fused, elementary, rtol=1e-10, atol=1e-10)


def _meta_gradients(name: str, exact: bool | None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The meta-gradient through one inner step of a mixing layer and the norm: per-task loop, and
    vmapped over tasks (``exact``: inside ``exact_normalization``)."""
    make, shape = NORMS[name]
    layer = _randomized(make())
    params = {k: v.detach().requires_grad_() for k, v in layer.named_parameters()}
    x, y = torch.randn(4, *shape, dtype=torch.float64), torch.randn(4, *shape, dtype=torch.float64)

    def loss(p: dict[str, torch.Tensor], inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ((torch.tanh(call(layer, inputs * 1.5 + inputs.pow(2), p)) - targets) ** 2).mean()

    def task(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        step = grad(loss)(params, inputs, targets)
        return loss({k: v - 0.5 * step[k] for k, v in params.items()}, inputs.flip(0), targets.flip(0))

    def meta_grad(value: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.autograd.grad(value, list(params.values())))

    loop = meta_grad(torch.stack([task(x[i], y[i]) for i in range(4)]).mean())
    with exact_normalization() if exact else contextlib.nullcontext():
        vmapped = meta_grad(vmap(task)(x, y).mean())
    return loop, vmapped


@pytest.mark.parametrize("name", sorted(NORMS))
def test_second_order_gradients_under_vmap_equal_the_loop(name: str) -> None:
    loop, vmapped = _meta_gradients(name, exact=True)
    for a, b in zip(loop, vmapped, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(NORMS))
def test_fused_norms_under_vmap_are_still_wrong_in_this_torch(name: str) -> None:
    """Why ``exact_normalization`` exists: if this starts failing, PyTorch fixed the defect for that
    norm and its elementary path can be dropped for this version."""
    loop, vmapped = _meta_gradients(name, exact=False)
    scale = max(float(g.abs().max()) for g in loop)
    assert max(float((a - b).abs().max()) for a, b in zip(loop, vmapped, strict=True)) > 1e-6 * scale


def test_call_uses_batch_statistics_and_leaves_running_statistics_alone() -> None:
    layer = nn.BatchNorm2d(3)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    x = torch.randn(8, 3, 4, 4) * 3 + 2
    for mode in (layer.train, layer.eval):
        mode()
        out = call(layer, x)
        torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    for key, value in layer.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_running_stat_overrides_name_every_batch_norm_buffer() -> None:
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    untracked = nn.BatchNorm2d(2, track_running_stats=False)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Sequential(untracked))
    assert running_stat_overrides(model) == {f"1.{name}": None for name in buffers}
    assert running_stat_overrides(nn.BatchNorm1d(4)) == {name: None for name in buffers}


def test_call_sends_gradients_to_the_given_parameters() -> None:
    layer = nn.Linear(3, 2)
    weight = torch.randn(2, 3, requires_grad=True)
    out = call(layer, torch.ones(1, 3), {"weight": weight})
    out.sum().backward()
    assert weight.grad is not None and layer.weight.grad is None and layer.bias.grad is not None


def test_unsupported_layers_are_named() -> None:
    with pytest.raises(ConfigError, match="track_running_stats=False"):
        check_supported(nn.Sequential(nn.Conv2d(1, 2, 3), nn.InstanceNorm2d(2, track_running_stats=True)))
    check_supported(nn.Sequential(nn.Conv2d(1, 2, 3), nn.InstanceNorm2d(2), nn.BatchNorm2d(2)))
    assert unbatchable_layer(nn.Sequential(nn.Linear(2, 2), nn.GRU(2, 3))) == "1 (GRU)"
    assert unbatchable_layer(nn.Sequential(nn.Linear(2, 2))) is None


@pytest.mark.parametrize(
    ("message", "vmapped", "expected"),
    [
        ("derivative for aten::_foo_backward is not implemented", False, "aten::_foo_backward.*first_order=True"),
        ("vmap: It looks like you're calling .item() on a Tensor", True, "vmap=False"),
        (
            "attempted to call in-place operation (aten::add_.Tensor) that would mutate a captured Tensor",
            False,
            "in place",
        ),
    ],
)
def test_torch_limits_become_one_line_errors(message: str, vmapped: bool, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        with explained_errors(vmapped):
            raise RuntimeError(message + "\nmore lines of trace")
    assert "\n" not in str(caught.value)


def test_other_errors_pass_through() -> None:
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        with explained_errors(True):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    with pytest.raises(RuntimeError, match="vmap"):
        with explained_errors(False):
            raise RuntimeError("vmap: something")


def test_support_and_query_statistics_normalize_each_query_with_the_support_set() -> None:
    """By hand: query i's outputs are the last row of the model run in train mode on cat(support, query_i)."""
    from fastadapt.nn.functional import with_statistics, with_support_and_query_statistics

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3)).double()
    support, queries = torch.randn(6, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    predict = with_support_and_query_statistics(lambda x: call(model, x), support)
    with torch.no_grad():
        by_hand = torch.stack([model.train()(torch.cat([support, q[None]]))[-1] for q in queries])
        torch.testing.assert_close(predict(queries), by_hand)
        torch.testing.assert_close(predict(queries[2:]), by_hand[2:])  # each query on its own
        assert not torch.allclose(predict(queries), call(model, queries))  # not the transductive outputs
        assert with_statistics(model, support, "query") is model
        with pytest.raises(ConfigError, match="population statistics normalize the support set too"):
            with_statistics(model, support, "population")
        with pytest.raises(ConfigError, match=r"statistics must be one of \('query', 'support', 'support_and_query', "):
            with_statistics(model, support, "running")
