"""MAML's meta-gradient against an independent reference and finite differences (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import directional_fd, random_dataset, to_double, unit_directions

import fastadapt as fa
from fastadapt.errors import ConfigError


def _sinusoid_batch(tasks: int = 3, shots: int = 5) -> fa.TaskBatch:
    batch = fa.SinusoidTasks(shots=shots, queries=7, seed=3).sample(tasks)
    return to_double(batch)


def _reference_meta_loss(weights: list[torch.Tensor], batch: fa.TaskBatch, lr: float, steps: int) -> torch.Tensor:
    """MAML written out by hand for a 1-40-40-1 ReLU MLP: explicit tensors and torch.autograd.grad."""

    def forward(w: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x @ w[0].T + w[1])
        h = torch.relu(h @ w[2].T + w[3])
        return h @ w[4].T + w[5]

    losses = []
    for task in batch:
        fast = list(weights)
        for _ in range(steps):
            inner = F.mse_loss(forward(fast, task.support_x), task.support_y)
            grads = torch.autograd.grad(inner, fast, create_graph=True)
            fast = [w - lr * g for w, g in zip(fast, grads, strict=True)]
        losses.append(F.mse_loss(forward(fast, task.query_x), task.query_y))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("steps", [1, 3])
def test_second_order_meta_gradient_equals_hand_written_reference(steps: int) -> None:
    model = fa.nn.MLP(1, 1, hidden=(40, 40)).double()
    learner = fa.MAML(model, inner_lr=0.01, inner_steps=steps, loss="mse")
    batch = _sinusoid_batch()
    loss, _ = learner.meta_loss(batch)
    ours = torch.autograd.grad(loss, list(model.parameters()))
    weights = [p.detach().clone().requires_grad_() for p in model.parameters()]
    reference_loss = _reference_meta_loss(weights, batch, 0.01, steps)
    reference = torch.autograd.grad(reference_loss, weights)
    assert torch.allclose(loss, reference_loss, rtol=1e-12, atol=0)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 3])
def test_second_order_meta_gradient_equals_finite_differences_conv4(steps: int) -> None:
    model = fa.nn.Conv4(1, 4, hidden=6, image_size=16).double()
    learner = fa.MAML(model, inner_lr=0.3, inner_steps=steps)
    batch = to_double(fa.FewShotTasks(random_dataset(size=16), ways=4, shots=2, queries=3, seed=1).sample(2))
    params = list(model.parameters())
    loss, _ = learner.meta_loss(batch)
    grads = torch.autograd.grad(loss, params)
    for direction in unit_directions(params, 3):
        analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True)).item()
        numeric = directional_fd(lambda: learner.meta_loss(batch)[0], params, direction)
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_second_order_term_matters() -> None:
    """The second-order and first-order meta-gradients differ; otherwise the FD test proves little."""
    model = fa.nn.MLP(1, 1).double()
    batch = _sinusoid_batch()
    exact = torch.autograd.grad(fa.MAML(model, 0.01, 1, loss="mse").meta_loss(batch)[0], list(model.parameters()))
    first = torch.autograd.grad(
        fa.MAML(model, 0.01, 1, loss="mse", first_order=True).meta_loss(batch)[0], list(model.parameters())
    )
    assert max((a - b).abs().max().item() for a, b in zip(exact, first, strict=True)) > 1e-6


@pytest.mark.parametrize("steps", [1, 3])
def test_first_order_meta_gradient_is_the_gradient_at_the_adapted_parameters(steps: int) -> None:
    model = fa.nn.MLP(1, 1).double()
    learner = fa.MAML(model, inner_lr=0.01, inner_steps=steps, loss="mse", first_order=True)
    batch = _sinusoid_batch()
    loss, _ = learner.meta_loss(batch)
    ours = torch.autograd.grad(loss, list(model.parameters()))
    expected = [torch.zeros_like(p) for p in model.parameters()]
    for task in batch:
        adapted = [p.detach().clone() for p in model.parameters()]
        names = [n for n, _ in model.named_parameters()]
        for _ in range(steps):
            leaf = [a.requires_grad_() for a in adapted]
            out = torch.func.functional_call(model, dict(zip(names, leaf, strict=True)), (task.support_x,))
            grads = torch.autograd.grad(F.mse_loss(out, task.support_y), leaf)
            adapted = [(a - 0.01 * g).detach() for a, g in zip(leaf, grads, strict=True)]
        leaf = [a.requires_grad_() for a in adapted]
        out = torch.func.functional_call(model, dict(zip(names, leaf, strict=True)), (task.query_x,))
        for e, g in zip(expected, torch.autograd.grad(F.mse_loss(out, task.query_y), leaf), strict=True):
            e += g / len(batch)
    for a, b in zip(ours, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("first_order", [False, True])
def test_vmap_and_loop_agree_for_conv4_with_batchnorm(first_order: bool) -> None:
    model = fa.nn.Conv4(1, 5, hidden=8, image_size=16).double()
    batch = to_double(fa.FewShotTasks(random_dataset(size=16), ways=5, shots=1, queries=3, seed=2).sample(4))
    results = {}
    for vmap in (False, True):
        learner = fa.MAML(model, inner_lr=0.4, inner_steps=2, first_order=first_order, vmap=vmap)
        loss, metrics = learner.meta_loss(batch)
        results[vmap] = (loss, metrics, torch.autograd.grad(loss, list(model.parameters())))
    (loss_loop, metrics_loop, grad_loop), (loss_vmap, metrics_vmap, grad_vmap) = results[False], results[True]
    scale = max(g.abs().max().item() for g in grad_loop)
    assert abs(loss_loop.item() - loss_vmap.item()) <= 1e-12
    assert metrics_loop["accuracy"] == pytest.approx(metrics_vmap["accuracy"])
    assert max((a - b).abs().max().item() for a, b in zip(grad_loop, grad_vmap, strict=True)) <= 1e-8 * scale


def test_adapt_takes_test_inner_steps_in_eval_mode() -> None:
    model = fa.nn.MLP(1, 1).double()
    learner = fa.MAML(model, inner_lr=0.01, inner_steps=1, test_inner_steps=5, loss="mse")
    task = _sinusoid_batch()[0]
    learner.eval()
    five = learner.adapt(task.support_x, task.support_y)(task.query_x)
    explicit = learner.adapt(task.support_x, task.support_y, steps=5)(task.query_x)
    one = learner.adapt(task.support_x, task.support_y, steps=1)(task.query_x)
    torch.testing.assert_close(five, explicit)
    assert not torch.allclose(five, one)


def test_adaptation_lowers_the_support_loss() -> None:
    model = fa.nn.MLP(1, 1).double()
    learner = fa.MAML(model, inner_lr=0.01, inner_steps=1, loss="mse")
    task = _sinusoid_batch()[0]
    before = F.mse_loss(model(task.support_x), task.support_y)
    after = F.mse_loss(learner.adapt(task.support_x, task.support_y, steps=10)(task.support_x), task.support_y)
    assert after < before


def test_evaluate_under_no_grad_matches_meta_loss_values() -> None:
    model = fa.nn.Conv4(1, 5, hidden=8, image_size=16)
    learner = fa.MAML(model, inner_lr=0.4, inner_steps=2, test_inner_steps=2)
    batch = fa.FewShotTasks(random_dataset(size=16), ways=5, shots=1, queries=3).sample(3)
    _, metrics = learner.meta_loss(batch)
    scores = learner.evaluate(batch)
    assert scores["loss"].mean().item() == pytest.approx(metrics["loss"], rel=1e-5)
    assert scores["accuracy"].mean().item() == pytest.approx(metrics["accuracy"])


def test_more_ways_than_model_outputs_is_a_clear_error() -> None:
    learner = fa.MAML(fa.nn.Conv4(1, 5, hidden=4, image_size=16))
    batch = fa.FewShotTasks(random_dataset(size=16), ways=10, shots=1, queries=1).sample(1)
    with pytest.raises(ConfigError, match="10 classes but the model has 5 outputs"):
        learner.meta_loss(batch)


@pytest.mark.parametrize(
    "bad", [dict(inner_steps=-1), dict(inner_lr=0.0), dict(test_inner_steps=-1), dict(inner_steps=0, per_step_lr=True),
            dict(inner_steps=0, per_step_bn=True), dict(multi_step_loss=True)]
)
def test_impossible_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ConfigError):
        fa.MAML(fa.nn.MLP(1, 1), **bad)


def test_no_inner_steps_trains_the_pretrained_baseline_on_the_plain_query_loss() -> None:
    torch.manual_seed(0)
    model = fa.nn.MLP(1, 1, hidden=(8,))
    learner = fa.MAML(model, inner_lr=0.01, inner_steps=0, test_inner_steps=10, loss="mse")
    batch = fa.SinusoidTasks(shots=5, queries=7, seed=1).sample(4)
    loss, _ = learner.meta_loss(batch)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    reference = sum(
        torch.nn.functional.mse_loss(model(qx), qy) for qx, qy in zip(batch.query_x, batch.query_y, strict=True)
    ) / 4
    for got, want in zip(grads, torch.autograd.grad(reference, list(model.parameters())), strict=True):
        torch.testing.assert_close(got, want)
    learner.eval()
    adapted = learner.evaluate(batch)["loss"]  # fine-tuned at test by test_inner_steps steps
    assert not torch.allclose(adapted, learner.evaluate(batch, steps=0)["loss"])
    with pytest.raises(ConfigError, match="metasgd .*needs inner_steps >= 1"):
        fa.MetaSGD(fa.nn.MLP(1, 1), inner_steps=0)
