"""Parameter helpers: tensors flattened into one vector and shaped back, gradients flowing through both; the
functional optimizer steps against torch's optimizers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fastadapt.nn.params import flatten, momentum_step, state_digest, unflatten


def test_flatten_and_unflatten_are_inverse_and_match_torch() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Flatten(), torch.nn.Linear(3, 2))
    params = list(model.parameters())
    vector = flatten(params)
    assert torch.equal(vector, torch.nn.utils.parameters_to_vector(params))
    assert all(torch.equal(a, b) for a, b in zip(unflatten(vector, params), params, strict=True))


def test_non_contiguous_tensors_flatten_in_their_logical_order() -> None:
    weight = torch.randn(4, 3, 2, 2).to(memory_format=torch.channels_last)  # torch's parameters_to_vector refuses it
    assert not weight.is_contiguous()
    assert torch.equal(flatten([weight]), weight.contiguous().view(-1))
    assert torch.equal(unflatten(flatten([weight]), [weight])[0], weight)


def test_gradients_flow_through_the_views() -> None:
    like = [torch.zeros(2, 3), torch.zeros(4)]
    vector = torch.arange(10.0, requires_grad=True)
    first, second = unflatten(vector, like)
    (2 * first.sum() + 3 * second.sum()).backward()
    assert vector.grad.tolist() == [2.0] * 6 + [3.0] * 4


@pytest.mark.parametrize(("momentum", "dampening", "weight_decay"),
                         [(0.9, 0.9, 1e-3), (0.5, 0.0, 0.0), (0.0, 0.7, 0.1)])
def test_momentum_step_is_torch_sgd(momentum: float, dampening: float, weight_decay: float) -> None:
    generator = torch.Generator().manual_seed(0)
    start = {"w": torch.randn(3, 2, generator=generator, dtype=torch.float64),
             "b": torch.randn(3, generator=generator, dtype=torch.float64)}
    grads = [{k: torch.randn(v.shape, generator=generator, dtype=torch.float64) for k, v in start.items()}
             for _ in range(4)]
    reference = {k: v.clone().requires_grad_() for k, v in start.items()}
    optimizer = torch.optim.SGD(reference.values(), lr=0.05, momentum=momentum, dampening=dampening,
                                weight_decay=weight_decay)
    ours, buffers = dict(start), {}
    for g in grads:
        for name, p in reference.items():
            p.grad = g[name].clone()
        optimizer.step()
        ours, buffers = momentum_step(ours, g, buffers, dict.fromkeys(ours, 0.05), momentum, dampening, weight_decay)
    for name, p in reference.items():
        torch.testing.assert_close(ours[name], p.detach(), rtol=1e-14, atol=1e-15)
    assert (buffers == {}) == (momentum == 0)  # without momentum torch keeps no buffer (and ignores dampening)


def test_the_state_digest_changes_with_any_parameter_or_buffer_and_not_with_a_copy() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    before = state_digest(model)
    assert state_digest(copy.deepcopy(model)) == before
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = torch.nextafter(model[0].weight[0, 0, 0, 0], torch.tensor(1.0))  # one ulp
    assert state_digest(model) != before
    model = copy.deepcopy(model)
    after = state_digest(model)
    model[1].num_batches_tracked += 1  # a buffer
    assert state_digest(model) != after
