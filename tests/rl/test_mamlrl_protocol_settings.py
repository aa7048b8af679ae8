"""The MAML paper's test-time protocol for MAML-RL: more trajectories per adaptation step when testing."""

from __future__ import annotations

import pytest
import torch

from fastadapt.config import build_config, build_tasks
from fastadapt.rl import MAMLRL, GaussianPolicy, Navigation2D, family


def _learner(**kwargs: object) -> MAMLRL:
    nav = family("nav2d")
    policy = GaussianPolicy(nav.obs_dim, nav.act_dim, hidden=(8,)).double()
    return MAMLRL(policy, nav, trajectories=3, horizon=5, **kwargs)  # type: ignore[arg-type]


def test_testing_collects_test_trajectories_and_training_its_own() -> None:
    learner = _learner(test_trajectories=7)
    tasks = torch.tensor([[0.1, -0.2], [0.3, 0.4]], dtype=torch.float64)
    params = [learner.params()] * 2
    assert learner.collect(tasks, params, torch.Generator().manual_seed(0)).per_task == 3
    assert learner.collect(tasks, params, torch.Generator().manual_seed(0), testing=True).per_task == 7
    _, steps = learner.adapt(tasks, 2, torch.Generator().manual_seed(0))
    assert [episodes.per_task for episodes, _ in steps] == [7, 7]
    assert _learner().test_trajectories == 3  # None: as many as in training


def test_the_adaptation_curve_averages_the_episodes_before_and_after_each_step() -> None:
    learner = _learner(test_trajectories=4)
    tasks = torch.tensor([[0.1, -0.2], [0.3, 0.4]], dtype=torch.float64)
    episodes = learner.adaptation_episodes(tasks, 2)
    assert [e.per_task for e in episodes] == [4, 4, 4]
    assert torch.equal(learner.adaptation_returns(tasks, 2), torch.stack([e.returns() for e in episodes], dim=1))


def test_the_code_s_navigation_scales_the_policy_s_actions_before_the_clip() -> None:
    """rllab's ``normalize`` around the MAML code's point robot: the policy acts in [-1, 1], moved by 0.1 times
    that; actions beyond are clipped. ``action_scale=1`` moves by the actions themselves."""
    goals = torch.zeros(1, 2, dtype=torch.float64)
    actions = torch.tensor([[0.5, -3.0]], dtype=torch.float64)
    for scale, moved in [(0.1, [0.05, -0.1]), (1.0, [0.1, -0.1])]:
        envs = Navigation2D(action_scale=scale).environments(goals, per_task=1, horizon=10)
        envs.reset(seed=0)
        position, reward, _ = envs.step(actions)
        distance = torch.tensor(moved, dtype=torch.float64).norm().item()
        assert position.tolist() == [moved] and reward.item() == pytest.approx(-distance)
    config = build_config("maml-rl-nav2d", [])
    assert build_tasks(config, "test").family.action_scale == 0.1  # type: ignore[union-attr]
