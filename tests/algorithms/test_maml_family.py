"""Meta-SGD, ANIL, the MAML++ options and Reptile: each checked where its idea differs from MAML."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import directional_fd, random_dataset, to_double, unit_directions

import fastadapt as fa
from fastadapt.errors import ConfigError
from fastadapt.nn.init import initialize


def _image_batch(tasks: int = 2) -> fa.TaskBatch:
    return to_double(fa.FewShotTasks(random_dataset(size=16), ways=4, shots=2, queries=3, seed=1).sample(tasks))


def _gradient(loss: torch.Tensor, learner: fa.MetaLearner) -> list[torch.Tensor]:
    """The gradient of ``loss`` for every trainable parameter of ``learner``, zero where unused (the model's own
    batch-norm weights under per-step batch norm)."""
    params = [p for p in learner.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _check_meta_gradient(learner: fa.MetaLearner, batch: fa.TaskBatch) -> None:
    """Analytic directional derivatives of meta_loss equal central finite differences."""
    params = [p for p in learner.parameters() if p.requires_grad]
    grads = _gradient(learner.meta_loss(batch)[0], learner)
    for direction in unit_directions(params, 3):
        analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True)).item()
        numeric = directional_fd(lambda: learner.meta_loss(batch)[0], params, direction)
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_metasgd_learns_a_rate_per_weight_and_its_meta_gradient_is_exact() -> None:
    model = fa.nn.Conv4(1, 4, hidden=6, image_size=16).double()
    learner = fa.MetaSGD(model, inner_lr=0.2, inner_steps=2).double()
    for name, p in model.named_parameters():
        rate = learner.learned_lrs[name.replace(".", "__")]
        assert rate.shape == p.shape and torch.all(rate == 0.2)
    _check_meta_gradient(learner, _image_batch())


def test_metasgd_step_is_elementwise() -> None:
    model = fa.nn.MLP(1, 1, hidden=(3,)).double()
    learner = fa.MetaSGD(model, inner_lr=0.1, inner_steps=1, loss="mse").double()
    with torch.no_grad():
        for rate in learner.learned_lrs.values():
            rate.uniform_(0.0, 0.5)
    task = to_double(fa.SinusoidTasks(shots=4, seed=0).sample(1))[0]
    grads = torch.autograd.grad(F.mse_loss(model(task.support_x), task.support_y), list(model.parameters()))
    adapted = {
        n: p - learner.learned_lrs[n.replace(".", "__")] * g
        for (n, p), g in zip(model.named_parameters(), grads, strict=True)
    }
    expected = torch.func.functional_call(model, adapted, (task.query_x,))
    torch.testing.assert_close(learner.adapt(task.support_x, task.support_y)(task.query_x), expected)


def test_anil_adapts_only_the_head_and_its_meta_gradient_is_exact() -> None:
    model = fa.nn.Conv4(1, 4, hidden=6, image_size=16).double()
    learner = fa.ANIL(model, inner_lr=0.5, inner_steps=3)
    assert set(learner.fast_params()) == {"weight", "bias"}
    batch = _image_batch()
    _check_meta_gradient(learner, batch)
    # The body gets a meta-gradient only through the features: its adapted copy is the original.
    task = batch[0]
    learner.eval()
    features = model.body(task.query_x)
    head = learner._adapted(task.support_x, task.support_y, 3)[-1]
    expected = F.linear(features, head["weight"], head["bias"])
    torch.testing.assert_close(learner.adapt(task.support_x, task.support_y, steps=3)(task.query_x), expected)


def test_anil_needs_a_head_it_can_find() -> None:
    with pytest.raises(ConfigError, match="head='fc'"):
        fa.ANIL(torch.nn.Linear(3, 2))
    with pytest.raises(ConfigError, match="'classifier' is not a submodule"):
        fa.ANIL(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)), head="classifier")
    sequential = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    assert list(fa.ANIL(sequential).fast_params()) == ["weight", "bias"]
    assert fa.ANIL(sequential).head is sequential[2]


def test_per_step_learning_rates_are_learned_and_exact() -> None:
    model = fa.nn.Conv4(1, 4, hidden=6, image_size=16).double()
    learner = fa.MAML(model, inner_lr=0.3, inner_steps=2, per_step_lr=True).double()
    assert all(rate.shape == (2,) for rate in learner.learned_lrs.values())
    _check_meta_gradient(learner, _image_batch())


def _standard_bn_model() -> torch.nn.Module:
    """A model from standard layers with two ``nn.BatchNorm2d`` (running statistics on, as users build them)."""
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4),
    ).double()


def _with_distinct_step_norms(learner: fa.MAML) -> fa.MAML:
    """Per-step batch-norm weights that differ between steps, so that a wrong index shows."""
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for table in learner.step_norms.values():
            table.add_(0.3 * torch.randn(table.shape, generator=generator, dtype=table.dtype))
    return learner


def test_per_step_batch_norm_weights_are_exact_on_a_standard_layer_model() -> None:
    model = _standard_bn_model()
    learner = _with_distinct_step_norms(fa.MAML(model, inner_lr=0.3, inner_steps=2, per_step_bn=True))
    assert set(learner.held_norms) == {"1.weight", "1.bias", "5.weight", "5.bias"}
    assert all(table.shape == (2, 4) for table in learner.step_norms.values())
    assert not set(learner.held_norms) & set(learner.fast_params())  # the inner loop does not adapt them
    _check_meta_gradient(learner, _image_batch())


def test_per_step_batch_norm_weights_serve_their_step() -> None:
    """Step k's weights normalize the support pass of step k and the query pass after it (the official code's
    ``num_step``), written out with functional_call and autograd.grad."""
    model = _standard_bn_model()
    learner = _with_distinct_step_norms(fa.MAML(model, inner_lr=0.3, inner_steps=2, per_step_bn=True))
    task = _image_batch(tasks=1)[0]
    norms = [{name: learner.step_norms[name.replace(".", "__")][k] for name in learner.held_norms} for k in (0, 1)]
    fast = {n: p for n, p in model.named_parameters() if n not in learner.held_norms}
    for k in range(2):
        out = torch.func.functional_call(model, {**fast, **norms[k]}, (task.support_x,))
        grads = torch.autograd.grad(F.cross_entropy(out, task.support_y), list(fast.values()))
        fast = {n: p - 0.3 * g for (n, p), g in zip(fast.items(), grads, strict=True)}
        expected = torch.func.functional_call(model, {**fast, **norms[k]}, (task.query_x,))
        ours = learner.adapt(task.support_x, task.support_y, steps=k + 1)(task.query_x)
        torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)
    three = learner.adapt(task.support_x, task.support_y, steps=3)(task.query_x)  # beyond training: the last step's
    assert torch.isfinite(three).all() and not torch.allclose(three, expected)


def test_batch_norm_left_out_of_the_inner_loop_is_meta_learned_only_and_exact() -> None:
    """MAML's code adapts its fast weights only, not the batch-norm variables: adapt_batch_norm=False. Written out with
    functional_call: one step on the other weights, the batch-norm ones as they are; the meta-gradient still reaches
    them (finite differences)."""
    model = _standard_bn_model()
    learner = fa.MAML(model, inner_lr=0.3, inner_steps=1, adapt_batch_norm=False)
    assert set(learner.held_norms) == {"1.weight", "1.bias", "5.weight", "5.bias"}
    assert not set(learner.held_norms) & set(learner.fast_params())
    task = _image_batch(tasks=1)[0]
    fast = {n: p for n, p in model.named_parameters() if n not in learner.held_norms}
    grads = torch.autograd.grad(F.cross_entropy(torch.func.functional_call(model, fast, (task.support_x,)),
                                                task.support_y), list(fast.values()))
    adapted = {n: p - 0.3 * g for (n, p), g in zip(fast.items(), grads, strict=True)}
    expected = torch.func.functional_call(model, adapted, (task.query_x,))
    torch.testing.assert_close(learner.adapt(task.support_x, task.support_y)(task.query_x), expected,
                               rtol=1e-10, atol=1e-12)
    _check_meta_gradient(learner, _image_batch())
    with pytest.raises(ConfigError, match="drop adapt_batch_norm=false"):
        fa.MAML(_standard_bn_model(), per_step_bn=True, adapt_batch_norm=False)


def test_the_maml_codes_network_and_steps_have_an_exact_meta_gradient() -> None:
    """The MAML Omniglot preset's network (TensorFlow's padding, batch norm with no scale, its initial weights) with
    the batch-norm weights out of the inner loop: finite differences, second order through two steps."""
    torch.manual_seed(0)
    learner = fa.MAML(_conv4(TENSORFLOW_CONV4), inner_lr=0.3, inner_steps=2, adapt_batch_norm=False).double()
    assert learner.held_norms and all(".bias" in name for name in learner.held_norms)  # no scale: only the shifts
    _check_meta_gradient(learner, _image_batch())


def test_per_step_batch_norm_needs_batch_norm_and_plain_maml() -> None:
    with pytest.raises(ConfigError, match="no batch-norm layer with weights"):
        fa.MAML(fa.nn.MLP(1, 1), per_step_bn=True)
    with pytest.raises(ConfigError, match="per_step_bn is an option of MAML"):
        fa.ANIL(_standard_bn_model(), head="9", per_step_bn=True)


def test_multi_step_loss_weights_anneal_onto_the_last_step() -> None:
    learner = fa.MAML(
        fa.nn.MLP(1, 1), inner_lr=0.01, inner_steps=4, multi_step_loss=True, multi_step_loss_steps=100, loss="mse"
    )
    learner.set_step(0)
    assert learner.multi_step_weights() == pytest.approx([0.25] * 4)
    learner.set_step(50)
    halfway = learner.multi_step_weights()
    assert sum(halfway) == pytest.approx(1.0) and halfway[0] < 0.25 < halfway[-1]
    learner.set_step(99)
    early = 0.25 - 0.99 * (0.25 - 0.03 / 4)  # 99% of the way from uniform to the floor of 0.03 / steps
    assert learner.multi_step_weights() == pytest.approx([early] * 3 + [1 - 3 * early])
    learner.set_step(100)
    assert learner.multi_step_weights() == [0.0, 0.0, 0.0, 1.0]  # annealed: the official code's last step alone


def test_multi_step_loss_is_the_weighted_sum_of_per_step_query_losses() -> None:
    model = fa.nn.MLP(1, 1).double()
    learner = fa.MAML(model, inner_lr=0.01, inner_steps=3, multi_step_loss=True, multi_step_loss_steps=10, loss="mse")
    learner.set_step(4)
    batch = to_double(fa.SinusoidTasks(shots=5, seed=1).sample(2))
    weights = learner.multi_step_weights()
    expected = 0.0
    for task in batch:
        per_step = [
            F.mse_loss(learner.adapt(task.support_x, task.support_y, steps=s)(task.query_x), task.query_y)
            for s in (1, 2, 3)
        ]
        expected += sum(w * step_loss for w, step_loss in zip(weights, per_step, strict=True)) / len(batch)
    assert learner.meta_loss(batch)[0].item() == pytest.approx(expected.item(), rel=1e-12)
    _check_meta_gradient(learner, batch)


def test_derivative_order_annealing_switches_to_second_order() -> None:
    model = fa.nn.MLP(1, 1).double()
    batch = to_double(fa.SinusoidTasks(shots=5, seed=1).sample(2))

    def grads(learner: fa.MAML) -> list[torch.Tensor]:
        return list(torch.autograd.grad(learner.meta_loss(batch)[0], list(model.parameters())))

    annealed = fa.MAML(model, 0.01, 1, loss="mse", first_order_until=10)
    first = grads(fa.MAML(model, 0.01, 1, loss="mse", first_order=True))
    second = grads(fa.MAML(model, 0.01, 1, loss="mse"))
    annealed.set_step(9)
    for a, b in zip(grads(annealed), first, strict=True):
        torch.testing.assert_close(a, b)
    annealed.set_step(10)
    for a, b in zip(grads(annealed), second, strict=True):
        torch.testing.assert_close(a, b)


def test_reptile_pseudo_gradient_is_the_mean_weight_difference() -> None:
    model = fa.nn.MLP(1, 1).double()
    learner = fa.Reptile(model, inner_lr=0.02, inner_steps=4, loss="mse")
    batch = to_double(fa.SinusoidTasks(shots=5, seed=2).sample(3))
    names = [n for n, _ in model.named_parameters()]
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for task in batch:
        weights = {n: p.detach().clone() for n, p in model.named_parameters()}
        for _ in range(4):
            leaf = {n: w.requires_grad_() for n, w in weights.items()}
            out = torch.func.functional_call(model, leaf, (task.support_x,))
            grads = torch.autograd.grad(F.mse_loss(out, task.support_y), list(leaf.values()))
            weights = {n: (w - 0.02 * g).detach() for (n, w), g in zip(leaf.items(), grads, strict=True)}
        for n, p in model.named_parameters():
            expected[n] += (p.detach() - weights[n]) / len(batch)
    loss, metrics = learner.meta_loss(batch)
    ours = torch.autograd.grad(loss, list(model.parameters()))
    for n, g in zip(names, ours, strict=True):
        torch.testing.assert_close(g, expected[n])
    assert "loss" in metrics and "accuracy" not in metrics


def test_reptile_sgd_meta_step_moves_towards_the_adapted_weights() -> None:
    model = fa.nn.MLP(1, 1).double()
    learner = fa.Reptile(model, inner_lr=0.02, inner_steps=3, loss="mse")
    task = to_double(fa.SinusoidTasks(shots=5, seed=2).sample(1))
    before = [p.detach().clone() for p in model.parameters()]
    learner.eval()
    adapted = learner._adapted(task.support_x[0], task.support_y[0], 3)[-1]
    learner.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    learner.meta_loss(task)[0].backward()
    optimizer.step()
    for p, old, new in zip(model.parameters(), before, adapted.values(), strict=True):
        torch.testing.assert_close(p.detach(), old + 0.5 * (new.detach() - old))


# The options of the papers' TensorFlow networks (MAML's and Reptile's presets): stride, 'same' padding, a flattened
# map, epsilon 0.001, batch norm without scale, the MAML code's initial weights.
TENSORFLOW_CONV4 = {"pool": "stride", "padding": "tensorflow", "readout": "flatten", "bn_eps": 1e-3, "bn_scale": False}


def _conv4(options: dict[str, object]) -> torch.nn.Module:
    model = fa.nn.Conv4(1, 4, hidden=6, image_size=16, **options)  # type: ignore[arg-type]
    return initialize(model, "maml") if options else model


@pytest.mark.parametrize("options", [{}, TENSORFLOW_CONV4], ids=["torch", "tensorflow"])
@pytest.mark.parametrize("make", [
    lambda m: fa.MAML(m, 0.3, 2, test_inner_steps=3),
    lambda m: fa.MAML(m, 0.3, 2, adapt_batch_norm=False),
    lambda m: fa.MetaSGD(m, 0.3, 1),
    lambda m: fa.ANIL(m, 0.3, 2),
    lambda m: fa.Reptile(m, 0.1, 2),
    lambda m: fa.MAML(m, 0.3, 2, per_step_bn=True, per_step_lr=True, multi_step_loss=True, multi_step_loss_steps=5),
])
def test_every_gradient_learner_gives_the_same_numbers_with_vmap(make, options) -> None:
    batch = _image_batch(tasks=3)
    results = {}
    for vmap in (False, True):
        torch.manual_seed(0)
        learner = make(_conv4(options)).double()
        learner.vmap = vmap
        loss, metrics = learner.meta_loss(batch)
        grads = _gradient(loss, learner)
        learner.eval()
        results[vmap] = (loss.item(), metrics, grads, learner.evaluate(batch))
    (loss_a, metrics_a, grads_a, eval_a), (loss_b, metrics_b, grads_b, eval_b) = results[False], results[True]
    assert loss_a == pytest.approx(loss_b, rel=1e-10) and metrics_a == pytest.approx(metrics_b, rel=1e-10)
    scale = max(g.abs().max().item() for g in grads_a)
    assert max((a - b).abs().max().item() for a, b in zip(grads_a, grads_b, strict=True)) <= 1e-8 * scale
    for key in eval_a:
        torch.testing.assert_close(eval_a[key], eval_b[key])


@pytest.mark.parametrize("make", [
    lambda m, c: fa.MAML(m, 0.3, 3, checkpoint_inner=c),
    lambda m, c: fa.MAML(m, 0.3, 2, first_order=True, checkpoint_inner=c),
    lambda m, c: fa.MAML(m, 0.3, 2, per_step_lr=True, multi_step_loss=True, multi_step_loss_steps=5,
                         checkpoint_inner=c),
    lambda m, c: fa.MetaSGD(m, 0.3, 2, checkpoint_inner=c),
    lambda m, c: fa.ANIL(m, 0.3, 2, checkpoint_inner=c),
    lambda m, c: fa.MAML(m, 0.3, 2, per_step_bn=True, checkpoint_inner=c),
])
def test_checkpointed_inner_loop_gives_the_same_meta_gradient(make) -> None:
    batch = _image_batch(tasks=2)
    results = []
    for checkpoint in (False, True):
        torch.manual_seed(0)
        learner = make(fa.nn.Conv4(1, 4, hidden=6, image_size=16), checkpoint).double()
        loss, _ = learner.meta_loss(batch)
        results.append((loss.item(), _gradient(loss, learner)))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-12)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_checkpointed_meta_gradient_equals_finite_differences() -> None:
    learner = fa.MAML(fa.nn.Conv4(1, 4, hidden=6, image_size=16), 0.3, 3, checkpoint_inner=True).double()
    _check_meta_gradient(learner, _image_batch())


def test_checkpointing_runs_the_loop_and_refuses_vmap() -> None:
    assert fa.MAML(fa.nn.Conv4(1, 4, hidden=6, image_size=16), checkpoint_inner=True).vmap is False
    with pytest.raises(ConfigError, match="checkpoint_inner runs the per-task loop"):
        fa.MAML(fa.nn.Conv4(1, 4, hidden=6, image_size=16), checkpoint_inner=True, vmap=True)


@pytest.mark.parametrize("make", [
    lambda m: fa.MAML(m, 0.3, 2),
    lambda m: fa.MAML(m, 0.3, 2, multi_step_loss=True, multi_step_loss_steps=5),
    lambda m: fa.Reptile(m, 0.1, 2),
    lambda m: fa.ProtoNet(fa.nn.Conv4(1, None, hidden=6, image_size=16)),
])
@pytest.mark.parametrize("vmap", [False, True])
def test_meta_backward_accumulates_the_gradient_of_meta_loss(make, vmap: bool) -> None:
    """The trainer's task-by-task backward gives meta_loss's value, metrics and gradient."""
    batch = _image_batch(tasks=3)
    torch.manual_seed(0)
    learner = make(fa.nn.Conv4(1, 4, hidden=6, image_size=16)).double()
    learner.vmap = vmap
    params = [p for p in learner.parameters() if p.requires_grad]
    loss, metrics = learner.meta_loss(batch)
    expected = torch.autograd.grad(loss, params)
    value, accumulated_metrics = learner.meta_backward(batch)
    assert value == pytest.approx(loss.item(), rel=1e-12) and accumulated_metrics == pytest.approx(metrics, rel=1e-12)
    for p, g in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)
