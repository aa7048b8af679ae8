"""The MAML paper's protocol settings for MAML-RL: more trajectories per adaptation step when testing, and samples
counted in transitions as the MAML code counts them."""

from __future__ import annotations

import pytest
import torch

from fastadapt.config import build_config, build_learner, build_tasks
from fastadapt.errors import ConfigError
from fastadapt.rl import MAMLRL, GaussianPolicy, Navigation2D, family
from fastadapt.rl.episodes import Episodes


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


def _episodes(lengths: list[list[int]], steps: int = 6) -> Episodes:
    """Episodes of ``len(lengths)`` tasks whose episode ``j`` of task ``i`` lasts ``lengths[i][j]`` steps and earns
    a reward of ``10 * i + j`` at each of them."""
    per = len(lengths[0])
    mask = torch.zeros(steps, len(lengths) * per, dtype=torch.float64)
    rewards = torch.zeros_like(mask)
    for i, row in enumerate(lengths):
        for j, length in enumerate(row):
            mask[:length, i * per + j] = 1
            rewards[:length, i * per + j] = 10 * i + j
    obs = torch.arange(steps * len(lengths) * per, dtype=torch.float64).view(steps, -1, 1).expand(-1, -1, 2)
    return Episodes(obs.clone(), torch.zeros(steps, len(lengths) * per, 2, dtype=torch.float64), rewards, mask, per)


def test_a_transition_budget_keeps_each_task_s_first_episodes_until_it_is_reached() -> None:
    episodes = _episodes([[4, 4, 4], [2, 5, 1]])
    kept = episodes.first_transitions(3)  # task 0: 4 >= 3 after one episode; task 1: 2, then 7 after two
    assert kept.per_task == 2
    assert kept.lengths().tolist() == [4, 0, 2, 5]
    assert kept.returns().tolist() == [4 * 0, (2 * 10 + 5 * 11) / 2]  # the dropped episode does not count
    assert kept.first_transitions(3).lengths().tolist() == [4, 0, 2, 5]
    assert episodes.first_transitions(100).lengths().tolist() == episodes.lengths().tolist()


def test_joined_collections_keep_each_task_s_episodes_together_in_order() -> None:
    first, second = _episodes([[3], [2]], steps=3), _episodes([[5, 1], [4, 2]], steps=5)
    joined = Episodes.join([first, second])
    assert joined.per_task == 3 and joined.mask.shape == (5, 6)
    assert joined.lengths().tolist() == [3, 5, 1, 2, 4, 2]
    assert joined.returns().tolist() == [(3 * 0 + 5 * 0 + 1 * 1) / 3, (2 * 10 + 4 * 10 + 2 * 11) / 3]
    assert torch.equal(joined.obs[3:, 0], first.obs[2:, 0].expand(2, 2))  # padding repeats the last observation


def test_training_and_testing_collect_until_their_transition_budgets() -> None:
    learner = _learner(transitions=17, test_transitions=7)  # rounds of 3 episodes of 5 steps (horizon 5)
    tasks = torch.tensor([[0.1, -0.2], [0.3, 0.4]], dtype=torch.float64)
    params = [learner.params()] * 2
    train = learner.collect(tasks, params, torch.Generator().manual_seed(0))
    test = learner.collect(tasks, params, torch.Generator().manual_seed(0), testing=True)
    assert train.lengths().tolist() == [5.0] * 8  # 15 < 17 after the first round; a second round of one
    assert test.lengths().tolist() == [5.0] * 4  # 5 < 7 after one, 10 after two: the third is dropped
    config = build_config("maml-rl-nav2d", ["algorithm.transitions=2000", "algorithm.test_transitions=4000"])
    built = build_learner(config)
    assert (built.transitions, built.test_transitions) == (2000, 4000)  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="transitions"):
        _learner(transitions=0)
