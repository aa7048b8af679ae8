"""MAML-RL's pieces against hand computations and finite differences."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import basis_directions, directional_fd

from fastadapt.nn.params import unflatten
from fastadapt.rl import MAMLRL, GaussianPolicy, Navigation2D, RLTasks, advantages, linear_baseline, reinforce_loss
from fastadapt.rl.episodes import Episodes, discounted_returns
from fastadapt.rl.mamlrl import pack
from fastadapt.rl.policy import kl_divergence, log_prob


def test_gaussian_log_prob_and_kl_match_torch_distributions() -> None:
    torch.manual_seed(0)
    old, new, actions = torch.randn(7, 6, dtype=torch.float64), torch.randn(7, 6, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    normal = lambda out: torch.distributions.Independent(torch.distributions.Normal(out[:, :3], out[:, 3:].exp()), 1)  # noqa: E731
    assert torch.allclose(log_prob(old, actions), normal(old).log_prob(actions))
    assert torch.allclose(kl_divergence(old, new), torch.distributions.kl_divergence(normal(old), normal(new)))


def test_one_vpg_step_on_a_linear_gaussian_policy_by_hand() -> None:
    """Policy a ~ N(w s + b, sigma^2) (no hidden layer): the REINFORCE gradient of
    -mean(A log pi) is -mean(A (a - w s - b) s / sigma^2) for w, and the inner step follows it."""
    policy = GaussianPolicy(1, 1, hidden=(), log_std=math.log(0.5)).double()
    with torch.no_grad():
        policy.mean.head.weight.fill_(0.3)
        policy.mean.head.bias.fill_(-0.1)
        policy.log_std.fill_(math.log(0.5))  # in double precision
    learner = MAMLRL(policy, Navigation2D(), inner_lr=0.7, trajectories=2)
    obs = torch.tensor([[[1.0], [2.0]], [[-1.0], [0.5]]], dtype=torch.float64)  # [T=2, B=2, 1]
    actions = torch.tensor([[[0.5], [0.2]], [[0.0], [0.4]]], dtype=torch.float64)
    adv = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)  # the last step of episode 2 is past its end
    episodes = Episodes(obs, actions, torch.zeros_like(adv), mask, per_task=2)
    s, a, valid = obs[..., 0], actions[..., 0], mask.sum()
    residual = (a - (0.3 * s - 0.1)) / 0.25
    grad_w = -(adv * residual * s * mask).sum() / valid
    grad_b = -(adv * residual * mask).sum() / valid
    adapted = learner._inner_step(learner.params(), episodes, adv, first_order=False)
    assert adapted["mean.head.weight"].item() == pytest.approx(0.3 - 0.7 * grad_w.item(), abs=1e-12)
    assert adapted["mean.head.bias"].item() == pytest.approx(-0.1 - 0.7 * grad_b.item(), abs=1e-12)
    loss = reinforce_loss(learner.forward_with(learner.params(), obs), pack(episodes, adv))
    assert loss.item() == pytest.approx(-(adv * log_prob(policy(obs), actions) * mask).sum().item() / valid.item())


def test_second_order_meta_gradient_matches_finite_differences() -> None:
    """The outer surrogate as a function of the initial parameters (trajectories fixed): autograd
    through two VPG steps equals central differences, and differs from the first-order gradient."""
    torch.manual_seed(0)
    policy = GaussianPolicy(2, 2, hidden=(5,)).double()
    learner = MAMLRL(policy, Navigation2D(), inner_lr=0.5, inner_steps=2, trajectories=3, horizon=6)
    tasks = RLTasks(Navigation2D(), seed=1).sample(2).tasks
    adapted, data = learner.adapt_tasks(tasks, 2)
    valid = learner.rollouts(tasks, adapted)
    valid_adv = advantages(valid)
    with torch.no_grad():
        old = torch.cat([log_prob(learner.forward_with(p, valid.task(i).obs), valid.task(i).actions) for i, p in enumerate(adapted)], dim=1)
    names = list(learner.params())

    def outer(vector: torch.Tensor, first_order: bool = False) -> torch.Tensor:
        learner.first_order = first_order
        params = dict(zip(names, unflatten(vector, learner.params().values())))
        return learner.surrogate(params, data, valid, valid_adv, old)[0]

    theta = torch.nn.utils.parameters_to_vector(policy.parameters()).detach().requires_grad_()
    (exact,) = torch.autograd.grad(outer(theta), theta)
    (first,) = torch.autograd.grad(outer(theta, first_order=True), theta)
    partials = [directional_fd(lambda: outer(theta), [theta], d) for d in basis_directions([theta])]
    numeric = torch.tensor(partials, dtype=theta.dtype)
    assert len(names) == 5 and torch.allclose(exact, numeric, rtol=1e-5, atol=1e-8)
    assert not torch.allclose(first, numeric, rtol=1e-3, atol=1e-6)


def test_linear_baseline_fits_linear_returns_and_gae_with_lambda_one_is_return_minus_baseline() -> None:
    steps, batch = 12, 3
    obs = torch.randn(steps, batch, 2, dtype=torch.float64)
    mask = torch.ones(steps, batch, dtype=torch.float64)
    mask[9:, 2] = 0  # a shorter episode
    rewards = torch.randn(steps, batch, dtype=torch.float64) * mask
    episodes = Episodes(obs, torch.zeros(steps, batch, 2, dtype=torch.float64), rewards, mask, per_task=batch)
    gamma = 0.9
    returns = discounted_returns(rewards, mask, gamma)
    assert returns[0, 0].item() == pytest.approx(sum(gamma**t * rewards[t, 0].item() for t in range(steps)))
    values = linear_baseline(episodes, gamma)
    raw = advantages(episodes, gamma=gamma, gae_lambda=1.0, normalize=False)
    assert torch.allclose(raw, (returns - values) * mask, atol=1e-9)
    normalized = advantages(episodes, gamma=gamma, gae_lambda=1.0)
    assert (normalized * mask).sum().abs() < 1e-9


@pytest.mark.parametrize("outer", ["trpo", "ppo"])
def test_an_outer_update_improves_the_surrogate_within_the_kl_bound(outer: str) -> None:
    torch.manual_seed(0)
    learner = MAMLRL(GaussianPolicy(2, 2, hidden=(16,)), Navigation2D(), inner_lr=0.1, trajectories=4, horizon=20, outer=outer, max_kl=0.01)
    batch = RLTasks(Navigation2D(), seed=0).sample(4)
    before = torch.nn.utils.parameters_to_vector(learner.parameters()).detach().clone()
    loss, metrics = learner.meta_backward(batch)
    step = -torch.cat([p.grad.reshape(-1) for p in learner.parameters()])
    assert step.abs().sum() > 0 and math.isfinite(loss)
    assert set(metrics) == {"return_before", "return_after", "kl", "loss"}
    if outer == "trpo":
        assert 0 < metrics["kl"] < 0.01 and metrics["loss"] < 0  # the surrogate starts at 0 (ratio 1, zero-mean advantages)
    assert torch.equal(torch.nn.utils.parameters_to_vector(learner.parameters()).detach(), before)  # the trainer applies it
