"""Parameter helpers: tensors flattened into one vector and shaped back, gradients flowing through both."""

from __future__ import annotations

import torch

from fastadapt.nn.params import flatten, unflatten


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
