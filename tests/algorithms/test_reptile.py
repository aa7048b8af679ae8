"""Reptile as its paper and official code run it: Adam with beta1 = 0 on mini-batches of the support set, fresh for
each task or carried from task to task as the official code does, and the non-transductive evaluation on the support
set plus one query."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import random_dataset, to_double
from torch import nn

import fastadapt as fa
from fastadapt.algorithms.minibatches import minibatch_order, task_key
from fastadapt.config import build_config, build_learner
from fastadapt.distributed import World
from fastadapt.errors import ConfigError
from fastadapt.nn.params import flatten
from fastadapt.train import meta_train


def _batch(tasks: int = 3) -> fa.TaskBatch:
    """Tasks of 4 ways, 12 support examples (3 shots) and 8 queries."""
    return to_double(fa.FewShotTasks(random_dataset(size=16), ways=4, shots=3, queries=2, seed=1).sample(tasks))


def _conv4() -> nn.Module:
    torch.manual_seed(0)
    return fa.nn.Conv4(1, 4, hidden=6, image_size=16).double()


def _bn_model() -> nn.Module:
    """A model with a standard batch-norm layer and no bias before it (whose gradient is rounding noise, which Adam
    would amplify to differences of 1e-9 between two exact implementations)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, bias=False), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 7 * 7, 4)).double()


def _torch_adam(model: nn.Module, task: fa.Task, order: torch.Tensor, lr: float) -> nn.Module:
    """The reference: ``torch.optim.Adam(betas=(0, 0.999))`` stepping a copy of the model on each mini-batch."""
    model = copy.deepcopy(model).train()  # batch statistics, as fastadapt's policy
    _adam_steps(model, torch.optim.Adam(model.parameters(), lr=lr, betas=(0.0, 0.999), eps=1e-8), task, order)
    return model


def _adam_steps(model: nn.Module, optimizer: torch.optim.Optimizer, task: fa.Task, order: torch.Tensor) -> None:
    """One step of ``optimizer`` on each mini-batch of ``task``'s support set."""
    for batch in order:
        optimizer.zero_grad()
        F.cross_entropy(model(task.support_x[batch]), task.support_y[batch]).backward()
        optimizer.step()


def _order(task: fa.Task, batch: int, steps: int) -> torch.Tensor:
    return minibatch_order(task_key(task.support_x), len(task.support_y), batch, steps)


def _moments(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """Adam's second moments of every parameter, in order, as one vector."""
    return flatten(optimizer.state[p]["exp_avg_sq"] for group in optimizer.param_groups for p in group["params"])


@pytest.mark.parametrize("inner_batch", [None, 5])
def test_the_adam_inner_loop_is_torch_adam_with_beta1_zero_fresh_for_each_task(inner_batch: int | None) -> None:
    model = _bn_model()
    learner = fa.Reptile(model, inner_lr=0.01, inner_steps=4, inner_optimizer="adam", inner_batch=inner_batch)
    for task in _batch(tasks=2):  # the second task starts from a fresh Adam state, as the first
        size = len(task.support_y)
        order = torch.arange(size).expand(4, size) if inner_batch is None else minibatch_order(
            task_key(task.support_x), size, inner_batch, 4)
        expected = _torch_adam(model, task, order, lr=0.01).parameters()
        with torch.no_grad():
            adapted = learner._adapted(task.support_x, task.support_y, 4)[-1]
        for ours, theirs in zip(adapted.values(), expected, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_a_shared_state_is_the_official_code_one_adam_through_every_task_resetting_only_the_weights() -> None:
    """The official code's loop, with meta-batches of one task: one ``torch.optim.Adam`` steps each task from the
    initialization, the initialization moves epsilon of the way to the adapted weights, Adam's state stays; a test
    task starts from that state and leaves it as it was."""
    model, epsilon = _bn_model(), 0.5
    learner = fa.Reptile(copy.deepcopy(model), inner_lr=0.01, inner_steps=3, test_inner_steps=4,
                         inner_optimizer="adam", inner_batch=5, test_inner_batch=4, inner_state="shared")
    meta_optimizer = torch.optim.SGD(learner.parameters(), lr=epsilon)
    model.train()
    adam = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.0, 0.999), eps=1e-8)
    batch = _batch(tasks=3)
    for i, task in enumerate(batch):
        meta_optimizer.zero_grad()
        learner.meta_backward(batch[i:i + 1])
        meta_optimizer.step()
        start = copy.deepcopy(model.state_dict())
        _adam_steps(model, adam, task, _order(task, 5, 3))
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(start[name] + epsilon * (p - start[name]))
    for ours, theirs in zip(learner.model.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(learner.inner_moments, _moments(adam), rtol=1e-10, atol=1e-15)
    assert int(learner.inner_count) == 9
    task, trained = _batch(tasks=4)[3], learner.inner_moments.clone()
    learner.eval()
    with torch.no_grad():
        predicted = learner.adapt(task.support_x, task.support_y)(task.query_x)
    _adam_steps(model, adam, task, _order(task, 4, 4))
    torch.testing.assert_close(predicted, model(task.query_x), rtol=1e-10, atol=1e-12)
    assert torch.equal(learner.inner_moments, trained) and int(learner.inner_count) == 9


def test_a_meta_batch_moves_the_shared_state_on_as_if_its_tasks_had_run_in_turn() -> None:
    """Each task starts from the batch's state; afterwards the state is Adam's running average over every task's
    gradients in turn: the reference feeds the recorded gradients, in order, to one ``torch.optim.Adam``."""
    learner = fa.Reptile(_bn_model(), inner_lr=0.01, inner_steps=3, inner_optimizer="adam", inner_batch=5,
                         inner_state="shared")
    first, second = _batch(tasks=2), _batch(tasks=5)[2:]
    learner.meta_loss(first)
    start = (learner.inner_moments.clone(), int(learner.inner_count))
    recorder = _bn_model()
    recorder.load_state_dict(learner.model.state_dict())
    recorded = []
    for task in second:  # every task from the same weights: record the gradients of its Adam steps
        model = copy.deepcopy(recorder).train()
        adam = _start_adam(model, start)
        for batch in _order(task, 5, 3):
            adam.zero_grad()
            F.cross_entropy(model(task.support_x[batch]), task.support_y[batch]).backward()
            recorded.append([p.grad.clone() for p in model.parameters()])
            adam.step()
    accumulator = copy.deepcopy(recorder)
    adam = _start_adam(accumulator, start)
    for grads in recorded:
        for p, g in zip(accumulator.parameters(), grads, strict=True):
            p.grad = g
        adam.step()
    learner.meta_loss(second)
    torch.testing.assert_close(learner.inner_moments, _moments(adam), rtol=1e-10, atol=1e-15)
    assert int(learner.inner_count) == start[1] + 9 == 15


def test_a_sequential_state_is_the_official_code_on_a_meta_batch_each_task_from_the_state_the_last_one_left() -> None:
    """``inner_state="sequential"``: one ``torch.optim.Adam`` runs the batch's tasks in turn, each from the
    initialization, its state carried on; the meta-step moves epsilon of the way to the mean adapted weights."""
    model, epsilon = _bn_model(), 0.5
    learner = fa.Reptile(copy.deepcopy(model), inner_lr=0.01, inner_steps=3, inner_optimizer="adam", inner_batch=5,
                         inner_state="sequential")
    meta_optimizer = torch.optim.SGD(learner.parameters(), lr=epsilon)
    model.train()
    adam = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.0, 0.999), eps=1e-8)
    for batch in (_batch(tasks=3), _batch(tasks=5)[3:]):
        meta_optimizer.zero_grad()
        learner.meta_backward(batch)
        meta_optimizer.step()
        start, adapted = copy.deepcopy(model.state_dict()), []
        for task in batch:
            model.load_state_dict(start)
            _adam_steps(model, adam, task, _order(task, 5, 3))
            adapted.append([p.detach().clone() for p in model.parameters()])
        model.load_state_dict(start)
        with torch.no_grad():
            for k, p in enumerate(model.parameters()):
                p.add_(epsilon * (torch.stack([weights[k] for weights in adapted]).mean(0) - p))
    for ours, theirs in zip(learner.model.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(learner.inner_moments, _moments(adam), rtol=1e-10, atol=1e-15)
    assert int(learner.inner_count) == 5 * 3


def test_a_sequential_state_differs_from_the_batch_start_one_and_refuses_vmap() -> None:
    """On a meta-batch of several tasks the two orders give other weights: the later tasks start elsewhere."""
    results = []
    for state in ("shared", "sequential"):
        learner = fa.Reptile(_bn_model(), inner_lr=0.01, inner_steps=3, inner_optimizer="adam", inner_state=state)
        learner.meta_loss(_batch(tasks=3))
        results.append(learner.meta_loss(_batch(tasks=3))[0].item())
    assert results[0] != pytest.approx(results[1], rel=1e-9)
    with pytest.raises(ConfigError, match="inner_state=sequential runs a meta-batch's tasks in turn"):
        fa.Reptile(_bn_model(), inner_optimizer="adam", inner_state="sequential", vmap=True)


def _start_adam(model: nn.Module, state: tuple[torch.Tensor, int]) -> torch.optim.Adam:
    """``torch.optim.Adam(betas=(0, 0.999))`` over ``model`` with second moments and step count ``state``."""
    adam = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.0, 0.999), eps=1e-8)
    moments, count = state
    offset = 0
    for p in model.parameters():
        squares = moments[offset:offset + p.numel()].view_as(p).clone()
        adam.state[p] = {"step": torch.tensor(float(count)), "exp_avg": torch.zeros_like(p), "exp_avg_sq": squares}
        offset += p.numel()
    return adam


def test_a_shared_state_resumes_exactly_and_is_refused_where_it_cannot_be_shared(tmp_path: Path) -> None:
    def train(steps: int, resume: bool) -> fa.Reptile:
        torch.manual_seed(0)
        learner = fa.Reptile(fa.nn.Conv4(1, 4, hidden=6, image_size=16), inner_lr=0.01, inner_steps=2,
                             inner_optimizer="adam", inner_batch=5, inner_state="shared")
        tasks = fa.FewShotTasks(random_dataset(size=16), ways=4, shots=3, queries=2, seed=1)
        run_dir = tmp_path / ("whole" if steps == 4 and not resume else "split")
        meta_train(learner, tasks, steps, meta_batch=2, run_dir=run_dir, resume=resume, progress=False,
                   optimizer=torch.optim.SGD(learner.parameters(), lr=1.0))
        return learner

    whole = train(4, resume=False)
    train(2, resume=False)
    resumed = train(4, resume=True)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert int(resumed.inner_count) == 4 * 2 * 2
    with pytest.raises(ConfigError, match="inner_state=shared carries one Adam state"):
        meta_train(whole, fa.FewShotTasks(random_dataset(size=16), ways=4, shots=3, queries=2), 1, meta_batch=2,
                   world=World(rank=0, size=2), progress=False)


def test_a_shared_state_counts_adam_steps_across_tasks_but_takes_each_inner_step_its_own_learning_rate() -> None:
    """Learned per-step rates are indexed by the step within the task, Adam's bias correction by its running count:
    the reference is ``torch.optim.Adam`` from the carried state, one parameter group per tensor, its rate set to
    that tensor's learned rate of each step."""
    learner = fa.Reptile(_bn_model(), inner_lr=0.01, inner_steps=3, inner_optimizer="adam", inner_state="shared",
                         per_step_lr=True)
    with torch.no_grad():
        for i, rates in enumerate(learner.learned_lrs.values()):
            rates.copy_(torch.tensor([0.03, 0.01, 0.002]) * (i + 1))
    learner.meta_loss(_batch(tasks=2))  # the count moves on to 6
    task, start = _batch()[0], (learner.inner_moments.clone(), int(learner.inner_count))
    with torch.no_grad():
        adapted = learner._adapted(task.support_x, task.support_y, 3)[-1]
    model = copy.deepcopy(learner.model).train()
    adam = _start_adam(model, start)
    adam.param_groups = [{**adam.param_groups[0], "params": [p]} for p in model.parameters()]
    rates = [learner.learned_lrs[name.replace(".", "__")] for name, _ in model.named_parameters()]
    for step in range(3):
        for group, rate in zip(adam.param_groups, rates, strict=True):
            group["lr"] = float(rate[step].detach())
        _adam_steps(model, adam, task, torch.arange(len(task.support_y))[None])
    assert start[1] == 6
    for ours, theirs in zip(adapted.values(), model.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_weights_trained_with_either_inner_state_load_into_a_learner_with_the_other() -> None:
    shared = fa.Reptile(_bn_model(), inner_lr=0.01, inner_steps=3, inner_optimizer="adam", inner_state="shared")
    shared.meta_loss(_batch(tasks=2))
    fresh = fa.Reptile(_bn_model(), inner_lr=0.01, inner_steps=3, inner_optimizer="adam")
    fresh.load_state_dict(shared.state_dict())  # the carried state is not used by a fresh-state learner
    assert set(fresh.state_dict()) == set(shared.state_dict()) - {"inner_moments", "inner_count"}
    carried = fa.Reptile(_bn_model(), inner_lr=0.01, inner_steps=3, inner_optimizer="adam", inner_state="shared")
    carried.load_state_dict(fresh.state_dict())  # a task-trained model: its test tasks start from a fresh state
    assert int(carried.inner_count) == 0 and not carried.inner_moments.any()
    task = _batch()[0]
    with torch.no_grad():
        ours, theirs = (m.eval().adapt(task.support_x, task.support_y)(task.query_x) for m in (carried, fresh))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_by_default_the_inner_loop_is_unchanged_full_batch_sgd() -> None:
    task = _batch()[0]
    reptile = fa.Reptile(_conv4(), inner_lr=0.1, inner_steps=3)
    fomaml = fa.MAML(_conv4(), inner_lr=0.1, inner_steps=3, first_order=True)
    with torch.no_grad():
        ours, theirs = (m._adapted(task.support_x, task.support_y, 3)[-1] for m in (reptile, fomaml))
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)


def test_test_time_adaptation_takes_its_own_batch_and_steps() -> None:
    learner = fa.Reptile(_bn_model(), inner_lr=0.01, inner_steps=2, test_inner_steps=5, inner_optimizer="adam",
                         inner_batch=8, test_inner_batch=4)
    task = _batch()[0]
    learner.eval()
    order = minibatch_order(task_key(task.support_x), len(task.support_y), 4, 5)
    with torch.no_grad():
        predicted = learner.adapt(task.support_x, task.support_y)(task.query_x)
    expected = _torch_adam(learner.model, task, order, lr=0.01)(task.query_x)
    torch.testing.assert_close(predicted, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("statistics", "inner_state"), [
    ("query", "task"), ("support", "task"), ("support_and_query", "task"), ("query", "shared"),
])
def test_a_loop_and_vmap_give_the_same_numbers(statistics: str, inner_state: str) -> None:
    batch = _batch()
    results = []
    for vmap in (False, True):
        learner = fa.Reptile(_conv4(), inner_lr=0.01, inner_steps=3, inner_optimizer="adam", inner_batch=5,
                             test_inner_batch=4, vmap=vmap, inner_state=inner_state)
        learner.meta_loss(batch[:1])  # a shared state moves on: the next batch starts from it
        loss, metrics = learner.meta_loss(batch)
        grads = torch.autograd.grad(loss, list(learner.parameters()))
        learner.eval()
        results.append((loss, metrics, grads, learner.evaluate(batch, statistics=statistics), learner.state_dict()))
    (loss_a, metrics_a, grads_a, eval_a, state_a), (loss_b, metrics_b, grads_b, eval_b, state_b) = results
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-6, atol=1e-6)
    assert metrics_a == pytest.approx(metrics_b, rel=1e-6)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    for key in eval_a:
        torch.testing.assert_close(eval_a[key], eval_b[key], rtol=1e-6, atol=1e-6)
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key], rtol=1e-6, atol=1e-9)


def test_the_meta_step_with_sgd_of_rate_one_lands_on_the_mean_adapted_weights() -> None:
    batch = _batch()
    learner = fa.Reptile(_conv4(), inner_lr=0.01, inner_steps=3, inner_optimizer="adam", inner_batch=5)
    with torch.no_grad():
        adapted = [learner._adapted(t.support_x, t.support_y, 3)[-1] for t in batch]
    optimizer = torch.optim.SGD(learner.parameters(), lr=1.0)
    learner.meta_backward(batch)
    optimizer.step()
    for name, p in learner.model.named_parameters():
        torch.testing.assert_close(p.detach(), torch.stack([a[name] for a in adapted]).mean(0))


def test_support_and_query_statistics_predict_each_query_with_the_support_set() -> None:
    """By hand: query i's outputs are the last row of the adapted model run on cat(support, query_i) in train mode."""
    model = _bn_model()
    learner = fa.Reptile(model, inner_lr=0.01, inner_steps=3, inner_optimizer="adam", inner_batch=5).eval()
    batch = _batch(tasks=2)
    scores = learner.evaluate(batch, statistics="support_and_query")
    for task, loss in zip(batch, scores["loss"], strict=True):
        with torch.no_grad():
            adapted = learner._adapted(task.support_x, task.support_y, 3)[-1]
        by_hand = copy.deepcopy(model).train()
        by_hand.load_state_dict(adapted, strict=False)
        with torch.no_grad():
            outputs = torch.stack([by_hand(torch.cat([task.support_x, q[None]]))[-1] for q in task.query_x])
        torch.testing.assert_close(loss, F.cross_entropy(outputs, task.query_y))
    transductive = learner.evaluate(batch, statistics="query")["loss"]
    assert not torch.allclose(scores["loss"], transductive)


def test_meta_test_runs_the_non_transductive_protocol() -> None:
    tasks = fa.FewShotTasks(random_dataset(size=16), ways=4, shots=1, queries=1, seed=3)
    learner = fa.Reptile(fa.nn.Conv4(1, 4, hidden=6, image_size=16), inner_lr=0.001, inner_steps=2,
                         test_inner_steps=3, inner_optimizer="adam", inner_batch=8, test_inner_batch=4)
    result = fa.meta_test(learner, tasks, episodes=6, batch_size=4, statistics="support_and_query")
    assert result.episodes == 6 and 0.0 <= result.mean <= 1.0


def test_the_config_keys_build_reptile_and_refuse_bad_values_in_one_line() -> None:
    run = build_config("reptile-omniglot-5w1s", ["algorithm.inner_optimizer=adam", "algorithm.inner_lr=0.001",
                                                 "algorithm.inner_batch=10", "algorithm.test_inner_batch=5",
                                                 "test.statistics=support_and_query"])
    learner = build_learner(run)
    assert isinstance(learner, fa.Reptile) and learner.inner_optimizer == "adam"
    assert (learner.inner_batch, learner.test_inner_batch, run.test.statistics) == (10, 5, "support_and_query")
    for override, message in [("algorithm.inner_batch=0", "algorithm.inner_batch must be at least 1, got 0"),
                              ("algorithm.test_inner_batch=0", "algorithm.test_inner_batch must be at least 1, got 0"),
                              ("algorithm.inner_optimizer=rmsprop", "algorithm.inner_optimizer must be one of"),
                              ("algorithm.inner_optimizer=sgd", "inner_optimizer 'sgd' keeps none")]:
        with pytest.raises(ConfigError, match=message) as caught:
            build_config("reptile-omniglot-5w1s", [override])
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("keys", "message"), [
    ({"inner_optimizer": "rmsprop"}, "inner_optimizer must be one of"),
    ({"inner_batch": 0}, "inner_batch must be a positive integer"),
    ({"test_inner_batch": 2.5}, "test_inner_batch must be a positive integer"),
    ({"inner_state": "global"}, "inner_state must be one of"),
    ({"inner_state": "shared"}, "inner_optimizer 'sgd' keeps none: use inner_optimizer=adam, or inner_state=task"),
])
def test_the_constructor_refuses_bad_values(keys: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fa.Reptile(_conv4(), 0.1, 1, **keys)
