"""Each task family steps and rewards as specified, checked against the simulator state itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastadapt.rl import AntDir, HalfCheetahDir, HalfCheetahVel, Navigation2D, ReacherGoal, RLTasks

gymnasium = pytest.importorskip("gymnasium")
pytest.importorskip("mujoco")


def test_navigation_moves_by_clipped_actions_and_pays_the_distance() -> None:
    family = Navigation2D()
    goals = torch.tensor([[0.3, -0.2], [0.05, 0.0]], dtype=torch.float64)
    envs = family.environments(goals, per_task=2, horizon=100)
    obs = envs.reset(seed=0)
    assert obs.shape == (4, 2) and not obs.any()
    actions = torch.tensor([[0.5, -0.05], [0.02, 0.02], [0.05, 0.0], [-0.3, 0.3]], dtype=torch.float64)
    obs, reward, done = envs.step(actions)
    expected = torch.tensor([[0.1, -0.05], [0.02, 0.02], [0.05, 0.0], [-0.1, 0.1]], dtype=torch.float64)
    assert torch.allclose(obs, expected)
    assert torch.allclose(reward, -(expected - goals.repeat_interleave(2, 0)).norm(dim=1))
    assert done.tolist() == [False, False, True, False]  # episode 3 reached its goal (0.05, 0)
    tasks = RLTasks(family, seed=0).sample(500).tasks
    assert tasks.abs().max() <= 0.5 and tasks.min() < -0.45 and tasks.max() > 0.45


def _one_step(family, task: float | list[float], action: np.ndarray):
    """One step from a fixed start; the forward velocity measured from the simulator (the cheetah's
    root joint, the ant's torso body), independently of the environment's info."""
    env = family.make(np.atleast_1d(np.asarray(task, dtype=np.float64)), horizon=10)
    env.reset(seed=3)
    sim = env.unwrapped
    x = (lambda: sim.data.body("torso").xpos[0]) if isinstance(family, AntDir) else (lambda: sim.data.qpos[0])
    before = float(x())
    obs, reward, terminated, truncated, info = env.step(action)
    velocity = (float(x()) - before) / sim.dt
    env.close()
    return obs, reward, velocity, info


@pytest.mark.parametrize("target", [0.4, 1.7])
def test_cheetah_velocity_reward(target: float) -> None:
    action = np.linspace(-0.8, 0.8, 6)
    obs, reward, velocity, _ = _one_step(HalfCheetahVel(), target, action)
    assert obs.shape == (17,)
    assert reward == pytest.approx(-abs(velocity - target) - 0.05 * float(np.square(action).sum()), rel=1e-6)


def test_cheetah_and_ant_direction_rewards_flip_with_the_task() -> None:
    action = np.full(6, 0.5)
    _, forward, velocity, _ = _one_step(HalfCheetahDir(), 1.0, action)
    _, backward, _, _ = _one_step(HalfCheetahDir(), -1.0, action)
    cost = 0.05 * float(np.square(action).sum())
    assert forward == pytest.approx(velocity - cost, rel=1e-6) and backward == pytest.approx(-velocity - cost, rel=1e-6)
    action = np.full(8, 0.3)
    obs, ant_forward, velocity, info = _one_step(AntDir(), 1.0, action)
    _, ant_backward, _, _ = _one_step(AntDir(), -1.0, action)
    assert obs.shape == (27,)
    assert ant_forward - ant_backward == pytest.approx(2 * velocity, rel=1e-5, abs=1e-9)
    terms = info["reward_ctrl"] + info["reward_contact"] + info["reward_survive"]
    assert ant_forward == pytest.approx(velocity + terms, rel=1e-6)


def test_reacher_hides_its_goal_and_pays_the_distance_to_it() -> None:
    family = ReacherGoal()
    goals = [np.array([0.15, -0.05]), np.array([-0.1, 0.12])]
    seen = []
    for goal in goals:
        env = family.make(goal, horizon=50)
        obs, _ = env.reset(seed=5)
        sim = env.unwrapped
        assert np.allclose(sim.get_body_com("target")[:2], goal)
        action = np.array([0.2, -0.1])
        obs, reward, *_ = env.step(action)
        distance = np.linalg.norm(sim.get_body_com("fingertip")[:2] - goal)
        assert reward == pytest.approx(-distance - float(np.square(action).sum()), rel=1e-6)
        assert obs.shape == (8,) and np.allclose(obs[-2:], sim.get_body_com("fingertip")[:2])
        seen.append(obs)
        env.close()
    assert np.allclose(seen[0], seen[1])  # the goal changes the reward, never what the policy sees
    radius = RLTasks(family, seed=0).sample(300).tasks.norm(dim=1)
    assert radius.max() <= 0.2 and radius.min() < 0.05


def test_a_meta_batch_of_mujoco_tasks_steps_as_arrays() -> None:
    family = HalfCheetahVel()
    envs = family.environments(torch.tensor([[0.5], [1.5]], dtype=torch.float64), per_task=3, horizon=5)
    obs = envs.reset(seed=0)
    assert obs.shape == (6, 17)
    for _ in range(5):
        obs, reward, done = envs.step(torch.full((6, 6), 3.0, dtype=torch.float64))  # clipped to 1
    assert reward.shape == (6,) and done.all()  # the horizon ends every episode
    envs.close()
