"""Every algorithm on models built from standard PyTorch layers, as users bring them.

The matrix of the issue "your own model": standard batch norm with running statistics, a
torchvision-style ResNet-18, a Transformer encoder (embeddings, attention, LayerNorm, dropout), an
LSTM and an MLP, under MAML (second order; and with batch norm's weights out of the inner loop), FOMAML,
Meta-SGD, ANIL, Reptile (SGD, and Adam with a carried state) and ProtoNet, in the per-task loop and under vmap.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from helpers import directional_fd, unit_directions, user_models
from torch import Tensor, nn

import fastadapt as fa
from fastadapt.errors import ConfigError

WAYS, SHOTS, QUERIES, TASKS = 5, 2, 3, 3


def bn_sequential() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, WAYS),
    )


def _images(n: int, generator: torch.Generator) -> Tensor:
    return torch.rand(TASKS, n, 1, 12, 12, generator=generator, dtype=torch.float64)


# name -> (model builder with dropout off, input builder [TASKS, n, ...], ANIL's head)
MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[int, torch.Generator], Tensor], str | None]] = {
    "bn_sequential": (bn_sequential, _images, None),
    "resnet18": (lambda: user_models.ResNet18(WAYS, in_channels=1, width=4), _images, "fc"),
    "transformer": (
        lambda: user_models.TransformerClassifier(
            vocab=11, length=6, num_classes=WAYS, dim=8, heads=2, layers=1, dropout=0.0
        ),
        lambda n, g: torch.randint(0, 11, (TASKS, n, 6), generator=g),
        None,
    ),
    "lstm": (
        lambda: user_models.LSTMClassifier(3, WAYS, hidden=6),
        lambda n, g: torch.randn(TASKS, n, 5, 3, generator=g, dtype=torch.float64),
        None,
    ),
    "mlp": (
        lambda: user_models.mlp(10, WAYS, hidden=12, dropout=0.0),
        lambda n, g: torch.randn(TASKS, n, 10, generator=g, dtype=torch.float64),
        None,
    ),
}

ALGORITHMS: dict[str, Callable[..., fa.MetaLearner]] = {
    "maml": lambda model, head, vmap: fa.MAML(model, inner_lr=0.1, inner_steps=2, vmap=vmap),
    "maml_held_bn": lambda model, head, vmap: fa.MAML(model, inner_lr=0.1, inner_steps=2, adapt_batch_norm=False,
                                                      vmap=vmap),
    "fomaml": lambda model, head, vmap: fa.MAML(model, inner_lr=0.1, inner_steps=2, first_order=True, vmap=vmap),
    "metasgd": lambda model, head, vmap: fa.MetaSGD(model, inner_lr=0.1, inner_steps=1, vmap=vmap),
    "anil": lambda model, head, vmap: fa.ANIL(model, inner_lr=0.1, inner_steps=2, vmap=vmap, head=head),
    "reptile": lambda model, head, vmap: fa.Reptile(model, inner_lr=0.1, inner_steps=2, vmap=vmap),
    "reptile_shared_adam": lambda model, head, vmap: fa.Reptile(
        model, inner_lr=0.01, inner_steps=2, inner_optimizer="adam", inner_state="shared", vmap=vmap),
    "protonet": lambda model, head, vmap: fa.ProtoNet(model, vmap=vmap),
}


def _batch(model_name: str, seed: int = 0) -> fa.TaskBatch:
    generator = torch.Generator().manual_seed(seed)
    inputs = MODELS[model_name][1]
    labels = torch.arange(WAYS)
    return fa.TaskBatch(
        inputs(WAYS * SHOTS, generator), labels.repeat_interleave(SHOTS).repeat(TASKS, 1),
        inputs(WAYS * QUERIES, generator), labels.repeat_interleave(QUERIES).repeat(TASKS, 1),
    )


def _model(model_name: str) -> nn.Module:
    torch.manual_seed(3)
    return MODELS[model_name][0]().double()


def _learner(algorithm: str, model_name: str, model: nn.Module, vmap: bool | None) -> fa.MetaLearner:
    return ALGORITHMS[algorithm](model, MODELS[model_name][2], vmap)


def _meta_gradient(learner: fa.MetaLearner, batch: fa.TaskBatch) -> list[Tensor]:
    learner.zero_grad(set_to_none=False)
    learner.meta_backward(batch)
    return [p.grad.clone() for p in learner.parameters()]


PAIRS = [(a, m) for a in ALGORITHMS for m in MODELS]


@pytest.mark.parametrize(("algorithm", "model_name"), PAIRS)
def test_meta_loss_meta_backward_and_adapt_run(algorithm: str, model_name: str) -> None:
    model = _model(model_name)
    learner = _learner(algorithm, model_name, model, vmap=False)
    batch = _batch(model_name)
    loss, metrics = learner.meta_loss(batch)
    assert torch.isfinite(loss) and 0 <= metrics["accuracy"] <= 1
    grads = _meta_gradient(learner, batch)
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    predict = learner.adapt(batch[0].support_x, batch[0].support_y)
    assert predict(batch[0].query_x).shape == (WAYS * QUERIES, WAYS)


@pytest.mark.parametrize(("algorithm", "model_name"), [p for p in PAIRS if p[1] != "lstm"])
def test_loop_and_vmap_meta_gradients_agree(algorithm: str, model_name: str) -> None:
    model = _model(model_name)
    batch = _batch(model_name)
    loop = _meta_gradient(_learner(algorithm, model_name, model, vmap=False), batch)
    vmapped = _meta_gradient(_learner(algorithm, model_name, model, vmap=True), batch)
    scale = max(float(g.abs().max()) for g in loop)
    assert scale > 0
    for a, b in zip(loop, vmapped, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-8 * scale)


@pytest.mark.parametrize("algorithm", ["maml", "protonet"])
def test_recurrent_layers_run_the_loop_and_refuse_vmap_with_one_line(algorithm: str) -> None:
    batch = _batch("lstm")
    with pytest.raises(ConfigError, match=r"recurrent layer (model|encoder)\.lstm \(LSTM\).*vmap=False"):
        _learner(algorithm, "lstm", _model("lstm"), vmap=True).meta_loss(batch)
    assert _learner(algorithm, "lstm", _model("lstm"), vmap=None).uses_vmap(batch.to("meta")) is False


@pytest.mark.parametrize("model_name", ["bn_sequential", "resnet18"])
def test_second_order_maml_matches_finite_differences(model_name: str) -> None:
    model = _model(model_name)
    learner = fa.MAML(model, inner_lr=0.1, inner_steps=2, vmap=False)
    batch = _batch(model_name)
    params = list(model.parameters())
    grads = torch.autograd.grad(learner.meta_loss(batch)[0], params)
    for direction in unit_directions(params, 2):
        analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True)).item()
        numeric = directional_fd(lambda: learner.meta_loss(batch)[0], params, direction)
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(
    ("algorithm", "model_name"), [(a, m) for a in ALGORITHMS for m in ("bn_sequential", "resnet18")]
)
@pytest.mark.parametrize("vmap", [False, True])
def test_the_users_parameters_and_buffers_are_untouched(algorithm: str, model_name: str, vmap: bool) -> None:
    """Batch norm normalizes with batch statistics; its running statistics are neither used nor updated."""
    model = _model(model_name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    learner = _learner(algorithm, model_name, model, vmap=vmap)
    batch = _batch(model_name)
    learner.meta_loss(batch)
    learner.meta_backward(batch)
    learner.eval()
    learner.evaluate(batch)
    learner.adapt(batch[0].support_x, batch[0].support_y)(batch[0].query_x)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_dropout_draws_a_different_mask_per_task_under_vmap() -> None:
    model = user_models.mlp(10, WAYS, hidden=12, dropout=0.5).double()
    one = _batch("mlp")[0]
    batch = fa.TaskBatch.stack([one, one, one])
    losses = fa.MAML(model, inner_lr=0.1, inner_steps=1, vmap=True).evaluate(batch)["loss"]
    assert len(set(losses.tolist())) == 3
    model.eval()
    losses = fa.MAML(model, inner_lr=0.1, inner_steps=1, vmap=True).evaluate(batch)["loss"]
    assert len(set(losses.tolist())) == 1


def test_a_layer_without_double_backward_is_one_line_naming_first_order() -> None:
    class Distances(nn.Module):  # torch.cdist has no double backward in PyTorch
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(10, 4)
            self.centers = nn.Parameter(torch.randn(WAYS, 4))

        def forward(self, x: Tensor) -> Tensor:
            return -torch.cdist(self.linear(x), self.centers)

    batch = _batch("mlp")
    for vmap in (False, True):
        with pytest.raises(ConfigError, match="_cdist_backward.*first_order=True"):
            fa.MAML(Distances().double(), inner_lr=0.1, vmap=vmap).meta_backward(batch)
    fa.MAML(Distances().double(), inner_lr=0.1, vmap=False, first_order=True).meta_backward(batch)


def test_an_old_style_autograd_function_is_one_line_naming_the_fix() -> None:
    class Square(torch.autograd.Function):  # forward(ctx, ...): torch.func transforms refuse it
        @staticmethod
        def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    model = user_models.mlp(10, WAYS, hidden=12, dropout=0.0).double()
    model.register_forward_hook(lambda _, __, out: Square.apply(out))
    with pytest.raises(ConfigError, match="setup_context"):
        fa.MAML(model, inner_lr=0.1, vmap=False).meta_backward(_batch("mlp"))


def _bn_encoder(feature_maps: bool = False) -> nn.Module:
    """A standard-layer encoder with batch norm: embeddings [n, 8], or feature maps [n, 8, 6, 6]."""
    layers = [nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2)]
    if not feature_maps:
        layers += [nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    encoder = nn.Sequential(*layers)
    encoder.feature_shape = (8, 6, 6)  # what RelationNet reads to size its relation module
    return encoder


EMBEDDING_METHODS: dict[str, Callable[[bool | None], fa.MetaLearner]] = {
    "matchingnet": lambda vmap: fa.MatchingNet(_bn_encoder(), vmap=vmap),
    "siamese": lambda vmap: fa.Siamese(_bn_encoder(), vmap=vmap, embedding_dim=8),
    "finetune": lambda vmap: fa.FineTune(_bn_encoder(), classes=12, vmap=vmap, embedding_dim=8),
    "relationnet": lambda vmap: fa.RelationNet(_bn_encoder(feature_maps=True), vmap=vmap),
}


@pytest.mark.parametrize("method", sorted(EMBEDDING_METHODS))
def test_the_embedding_family_takes_a_standard_layer_encoder(method: str) -> None:
    images = _batch("bn_sequential")
    classes = torch.stack([torch.randperm(12, generator=torch.Generator().manual_seed(t))[:WAYS] for t in range(TASKS)])
    batch = fa.TaskBatch(images.support_x, images.support_y, images.query_x, images.query_y, classes)
    gradients = []
    for vmap in (False, True):
        torch.manual_seed(5)
        learner = EMBEDDING_METHODS[method](vmap).double()
        before = {k: v.clone() for k, v in learner.state_dict().items()}
        gradients.append(_meta_gradient(learner, batch))
        assert all(torch.equal(v, before[k]) for k, v in learner.state_dict().items())
        learner.eval()
        assert learner.adapt(batch[0].support_x, batch[0].support_y, steps=2)(batch[0].query_x).shape == (15, WAYS)
    scale = max(float(g.abs().max()) for g in gradients[0])
    for a, b in zip(*gradients, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-8 * scale)


def test_support_statistics_normalize_queries_as_the_support_set_was() -> None:
    """By hand: one linear layer, batch norm, a head; the queries normalized with the support's moments."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 4), nn.BatchNorm1d(4), nn.Linear(4, WAYS)).double()
    task = _batch("mlp")[0]
    predict = fa.nn.with_support_statistics(fa.MAML(model, inner_lr=0.1).adapt(task.support_x, task.support_y, steps=0),
                                            task.support_x)
    hidden = model[0](task.support_x)
    mean, var = hidden.mean(0), hidden.var(0, unbiased=False)
    query = (model[0](task.query_x) - mean) / torch.sqrt(var + 1e-5) * model[1].weight + model[1].bias
    torch.testing.assert_close(predict(task.query_x), model[2](query))
    torch.testing.assert_close(predict(task.query_x[:2]), predict(task.query_x)[:2])  # queries independent


@pytest.mark.parametrize("algorithm", ["maml", "anil", "protonet"])
def test_support_statistics_in_the_loop_and_under_vmap_agree(algorithm: str) -> None:
    model = _model("resnet18")
    batch = _batch("resnet18")
    scores = [
        _learner(algorithm, "resnet18", model, vmap=v).evaluate(batch, statistics="support") for v in (False, True)
    ]
    torch.testing.assert_close(scores[0]["loss"], scores[1]["loss"], rtol=1e-9, atol=1e-12)
    transductive = _learner(algorithm, "resnet18", model, vmap=False).evaluate(batch)["loss"]
    assert not torch.allclose(scores[0]["loss"], transductive)
    with pytest.raises(ConfigError, match="statistics must be one of"):
        _learner(algorithm, "resnet18", model, vmap=False).evaluate(batch, statistics="running")


@pytest.mark.parametrize("algorithm", ["maml", "anil", "protonet"])
def test_population_statistics_in_the_loop_and_under_vmap_agree(algorithm: str) -> None:
    """Support and queries normalized with moments recorded on other tasks: each query on its own, the same
    numbers in the per-task loop and under vmap (where the fixed statistics, not exact_normalization, decide)."""
    model, batch = _model("resnet18"), _batch("resnet18")
    moments = fa.population_moments(_learner(algorithm, "resnet18", model, vmap=False), [_batch("resnet18", seed=1)])
    scores = [
        _learner(algorithm, "resnet18", model, vmap=v).evaluate(batch, statistics="population", population=moments)
        for v in (False, True)
    ]
    torch.testing.assert_close(scores[0]["loss"], scores[1]["loss"], rtol=1e-9, atol=1e-12)
    transductive = _learner(algorithm, "resnet18", model, vmap=False).evaluate(batch)["loss"]
    assert not torch.allclose(scores[0]["loss"], transductive)
    fewer = fa.TaskBatch(batch.support_x, batch.support_y, batch.query_x[:, :4], batch.query_y[:, :4])
    learner = _learner(algorithm, "resnet18", model, vmap=False)
    with fa.nn.fixed_statistics(learner, moments):
        full, part = (learner.adapt(fewer.support_x[0], fewer.support_y[0])(x) for x in (batch.query_x[0],
                                                                                          fewer.query_x[0]))
    torch.testing.assert_close(part, full[:4])  # a query's prediction does not depend on the other queries
    with pytest.raises(ConfigError, match="statistics='population' needs the moments"):
        learner.evaluate(batch, statistics="population")

