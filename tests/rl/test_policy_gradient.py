"""MAML-RL's pieces against hand computations and finite differences."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import basis_directions, directional_fd

from fastadapt.errors import ConfigError
from fastadapt.nn.params import unflatten
from fastadapt.rl import (
    MAMLRL,
    GaussianPolicy,
    Navigation2D,
    RLTasks,
    advantages,
    linear_baseline,
    mamlrl,
    reinforce_loss,
)
from fastadapt.rl.episodes import Episodes, baseline_fit, discounted_returns, unfitted_baseline
from fastadapt.rl.mamlrl import pack, step_to_kl_bound
from fastadapt.rl.policy import kl_divergence, log_prob


def test_gaussian_log_prob_and_kl_match_torch_distributions() -> None:
    torch.manual_seed(0)
    old, new = torch.randn(7, 6, dtype=torch.float64), torch.randn(7, 6, dtype=torch.float64)
    actions = torch.randn(7, 3, dtype=torch.float64)
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
    adapted, data = learner.adapt(tasks, 2)
    valid = learner.collect(tasks, adapted)
    valid_adv = advantages(valid)
    with torch.no_grad():
        outputs = [learner.forward_with(p, valid.task(i).obs) for i, p in enumerate(adapted)]
        old = torch.cat([log_prob(out, valid.task(i).actions) for i, out in enumerate(outputs)], dim=1)
    names = list(learner.params())

    def outer(vector: torch.Tensor, first_order: bool = False) -> torch.Tensor:
        learner.first_order = first_order
        params = dict(zip(names, unflatten(vector, learner.params().values()), strict=True))
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
def test_an_outer_step_applies_its_own_update_within_the_kl_bound(outer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outer step moves the parameters by exactly the step TRPO (or PPO) computed, with no optimizer and
    without writing a gradient."""
    torch.manual_seed(0)
    learner = MAMLRL(GaussianPolicy(2, 2, hidden=(16,)), Navigation2D(), inner_lr=0.1, trajectories=4, horizon=20,
                     outer=outer, max_kl=0.01)
    batch = RLTasks(Navigation2D(), seed=0).sample(4)
    computed: list[torch.Tensor] = []
    method = f"_{outer}"
    original = getattr(MAMLRL, method)

    def recorded(self: MAMLRL, *args: object) -> tuple[torch.Tensor, float, float]:
        step, loss, kl = original(self, *args)
        computed.append(step)
        return step, loss, kl

    monkeypatch.setattr(MAMLRL, method, recorded)
    before = torch.nn.utils.parameters_to_vector(learner.parameters()).detach().clone()
    loss, metrics = learner.outer_step(batch)
    after = torch.nn.utils.parameters_to_vector(learner.parameters()).detach()
    assert len(computed) == 1 and computed[0].abs().sum() > 0 and math.isfinite(loss)
    assert torch.equal(after, before + computed[0])  # bitwise: start + step
    assert all(p.grad is None for p in learner.parameters())
    assert set(metrics) == {"return_before", "return_after", "kl", "loss"}
    if outer == "trpo":
        assert 0 < metrics["kl"] < 0.01
        assert metrics["loss"] < 0  # the surrogate starts at 0 (ratio 1, zero-mean advantages)


def test_later_test_steps_take_their_own_step_size() -> None:
    """Test-time adaptation by two steps with inner_lr=0.1 then later_inner_lr=0.05 equals two VPG steps taken by
    hand on the same trajectories; the training's inner steps (re-run by ``adapted``) all take inner_lr."""
    torch.manual_seed(0)
    policy = GaussianPolicy(2, 2, hidden=(), log_std=math.log(0.5)).double()
    learner = MAMLRL(policy, Navigation2D(), inner_lr=0.1, later_inner_lr=0.05, inner_steps=2, trajectories=3,
                     horizon=6)
    tasks = RLTasks(Navigation2D(), seed=1).sample(2).tasks
    adapted, data = learner.adapt(tasks, 2, torch.Generator().manual_seed(0))
    start = {name: p.detach() for name, p in learner.params().items()}

    def by_hand(task: int, rates: tuple[float, float]) -> dict[str, torch.Tensor]:
        current = start
        for lr, (episodes, adv) in zip(rates, data, strict=True):
            part, part_adv = episodes.task(task), adv[:, episodes.columns(task)]
            theta = {name: p.clone().requires_grad_() for name, p in current.items()}
            loss = reinforce_loss(torch.func.functional_call(policy, theta, (part.obs,)), pack(part, part_adv))
            grads = torch.autograd.grad(loss, list(theta.values()))
            current = {name: p - lr * g for (name, p), g in zip(current.items(), grads, strict=True)}
        return current

    trained = learner.adapted(start, data)
    for task in range(2):
        for name, value in by_hand(task, (0.1, 0.05)).items():
            assert torch.allclose(adapted[task][name], value, rtol=0, atol=1e-12), name
        for name, value in by_hand(task, (0.1, 0.1)).items():
            assert torch.allclose(trained[task][name], value, rtol=0, atol=1e-12), name
    assert not torch.allclose(adapted[0]["mean.head.weight"], trained[0]["mean.head.weight"])


def test_a_relu_policy_is_the_hand_built_network() -> None:
    torch.manual_seed(0)
    policy = GaussianPolicy(3, 2, hidden=(5, 4), log_std=-0.5, activation="relu")
    state = policy.state_dict()
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4), torch.nn.ReLU(),
                              torch.nn.Linear(4, 2))
    for index, prefix in ((0, "mean.body.0"), (2, "mean.body.2"), (4, "mean.head")):
        mlp[index].load_state_dict({"weight": state[f"{prefix}.weight"], "bias": state[f"{prefix}.bias"]})
    obs = torch.randn(7, 3)
    out = policy(obs)
    assert torch.equal(out[:, :2], mlp(obs)) and torch.equal(out[:, 2:], torch.full((7, 2), -0.5))
    tanh = GaussianPolicy(3, 2, hidden=(5, 4), log_std=-0.5)  # the default, as earlier runs were built
    tanh.load_state_dict(state)  # the same parameters: only the config tells the activations apart
    assert not torch.equal(tanh(obs), out)


def test_trpos_first_candidate_puts_the_quadratic_kl_at_the_bound() -> None:
    """rllab's initial step: sqrt(2 * max_kl / d'Fd) * d, so that 0.5 s'Fs = max_kl (not twice it)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    fisher = a @ a.T + 0.1 * torch.eye(4, dtype=torch.float64)
    direction = torch.randn(4, generator=generator, dtype=torch.float64)
    step = step_to_kl_bound(direction, 0.5 * direction @ fisher @ direction, 0.01)
    assert (0.5 * step @ fisher @ step).item() == pytest.approx(0.01, rel=1e-12)
    expected = math.sqrt(2 * 0.01 / (direction @ fisher @ direction).item()) * direction
    torch.testing.assert_close(step, expected, rtol=1e-12, atol=0)
    assert torch.equal(step_to_kl_bound(direction, torch.tensor(0.0, dtype=torch.float64), 0.01),
                       torch.zeros_like(direction))


def test_a_given_baseline_replaces_the_fitted_one() -> None:
    steps, batch = 10, 4
    generator = torch.Generator().manual_seed(3)
    obs = torch.randn(steps, batch, 2, generator=generator, dtype=torch.float64)
    rewards = torch.randn(steps, batch, generator=generator, dtype=torch.float64)
    episodes = Episodes(obs, torch.zeros(steps, batch, 2, dtype=torch.float64), rewards,
                        torch.ones(steps, batch, dtype=torch.float64), per_task=batch)
    own = [baseline_fit(episodes, 0.9)]
    torch.testing.assert_close(advantages(episodes, 0.9, baselines=own), advantages(episodes, 0.9))
    unfitted = advantages(episodes, 0.9, normalize=False, baselines=[unfitted_baseline(episodes)])
    torch.testing.assert_close(unfitted, discounted_returns(rewards, episodes.mask, 0.9))  # no baseline: returns


def test_the_previous_steps_baseline_serves_each_test_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """rllab's order (the MAML code's test script): step k's advantages use the baseline fitted on step k-1's
    trajectories, none before the first; training and the default fit each step's own."""
    torch.manual_seed(0)
    learner = MAMLRL(GaussianPolicy(2, 2, hidden=(8,)), Navigation2D(), trajectories=3, horizon=8,
                     test_baseline="previous")
    given: list[list[torch.Tensor] | None] = []
    original = mamlrl.advantages

    def recorded(episodes: Episodes, *args: object, baselines: list[torch.Tensor] | None = None) -> torch.Tensor:
        given.append(baselines)
        return original(episodes, *args, baselines=baselines)

    monkeypatch.setattr(mamlrl, "advantages", recorded)
    tasks = RLTasks(Navigation2D(), seed=1).sample(2).tasks
    _, trajectories = learner.adapt(tasks, 2, torch.Generator().manual_seed(0))
    first = trajectories[0][0]
    assert given[0] is not None and all(not b.any() for b in given[0])
    assert given[1] is not None and all(torch.equal(b, baseline_fit(first.task(i), learner.gamma))
                                        for i, b in enumerate(given[1]))
    given.clear()
    learner._adapt(tasks, [0.1], torch.Generator().manual_seed(0))  # training's inner steps: their own fit
    assert given == [None]
    with pytest.raises(ConfigError, match="test_baseline must be one of"):
        MAMLRL(GaussianPolicy(2, 2), Navigation2D(), test_baseline="next")
