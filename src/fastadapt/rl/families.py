"""Meta-RL task families: a distribution over goals (or dynamics) and environments that run a whole
meta-batch of tasks, each with several trajectories, as arrays.

``Navigation2D`` is written directly in torch (every trajectory of every task steps in one tensor
operation). The MuJoCo families define their per-task reward over gymnasium's maintained
``HalfCheetah-v5``, ``Ant-v5`` and ``Reacher-v5`` and run in one ``gymnasium.vector.SyncVectorEnv``
(faster than the asynchronous one on few cores; ``fastadapt.rl.mujoco``, imported only when such an
environment is built). gymnasium and MuJoCo are optional: ``pip install fastadapt[rl]``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from fastadapt.errors import ConfigError
from fastadapt.rl.episodes import VectorTasks


class TaskFamily:
    """A distribution of RL tasks: sample task parameters, and build environments that run them."""

    name: ClassVar[str]
    obs_dim: ClassVar[int]
    act_dim: ClassVar[int]
    horizon: ClassVar[int]  # the paper's episode length
    task_dim: ClassVar[int]

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        """Task parameters ``[n, task_dim]`` (goals, velocities, directions)."""
        raise NotImplementedError

    def environments(self, tasks: Tensor, per_task: int, horizon: int) -> VectorTasks:
        raise NotImplementedError

    def describe(self, task: Tensor) -> str:
        """A task in words, for logs and videos."""
        return ", ".join(f"{v:.3f}" for v in task.tolist())


class Navigation2D(TaskFamily):
    """A point robot in the plane moves from the origin to a goal drawn uniformly from [-0.5, 0.5]^2
    (Finn et al. 2017): actions times ``action_scale`` are velocities clipped to [-0.1, 0.1], the reward is
    minus the distance to the goal, and an episode ends within 0.01 of the goal (or after 100 steps).
    ``action_scale=0.1`` is the MAML code's environment, wrapped in rllab's ``normalize`` (the policy acts
    in [-1, 1]); 1 clips the policy's actions as they are."""

    name = "nav2d"
    obs_dim, act_dim, horizon, task_dim = 2, 2, 100, 2

    def __init__(self, action_scale: float = 1.0) -> None:
        self.action_scale = action_scale

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5

    def environments(self, tasks: Tensor, per_task: int, horizon: int) -> VectorTasks:
        return _Navigation(tasks.to(torch.float64).repeat_interleave(per_task, dim=0), self.action_scale)

    def describe(self, task: Tensor) -> str:
        return f"goal ({task[0]:+.2f}, {task[1]:+.2f})"


class _Navigation(VectorTasks):
    def __init__(self, goals: Tensor, action_scale: float) -> None:
        self.goals = goals
        self.action_scale = action_scale
        self.position = torch.zeros_like(goals)

    def reset(self, seed: int) -> Tensor:
        self.position = torch.zeros_like(self.goals)
        return self.position.clone()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        self.position = self.position + (self.action_scale * actions.to(torch.float64)).clamp(-0.1, 0.1)
        offset = self.position - self.goals
        reward = -offset.norm(dim=1)
        done = (offset.abs() < 0.01).all(dim=1)
        return self.position.clone(), reward, done


# -- MuJoCo families ------------------------------------------------------------------------------


class MujocoFamily(TaskFamily):
    """A gymnasium MuJoCo environment whose reward depends on a task; subclasses give the reward."""

    env_id: ClassVar[str]
    make_kwargs: ClassVar[dict[str, Any]] = {}
    camera: ClassVar[str | None] = None  # the model's camera for videos ("track" follows the robot)

    def reward(self, task: np.ndarray, info: dict[str, Any], action: np.ndarray, base_reward: float) -> float:
        raise NotImplementedError

    def observe(self, env: Any, obs: np.ndarray) -> np.ndarray:
        """What the policy sees (the goal itself must stay hidden: it is what adaptation finds out)."""
        return obs

    def set_task(self, env: Any, task: np.ndarray) -> None:
        """Called after each reset; families whose task lives in the simulator state set it here."""

    def environments(self, tasks: Tensor, per_task: int, horizon: int) -> VectorTasks:
        from fastadapt.rl.mujoco import MujocoVector

        return MujocoVector(self, tasks.repeat_interleave(per_task, dim=0).numpy(), horizon)

    def make(self, task: np.ndarray, horizon: int, render: bool = False) -> Any:
        """One gymnasium environment running ``task`` (for videos and single-task use)."""
        from fastadapt.rl.mujoco import make_task_env

        return make_task_env(self, task, horizon, render)


CONTROL_COST = 0.05  # 0.5 * 0.1 * |a|^2, the weight of the MAML paper's locomotion tasks


class HalfCheetahVel(MujocoFamily):
    """HalfCheetah running at a target velocity drawn from U[0, 2] (Finn et al. 2017):
    reward = -|forward velocity - target| - 0.05 |a|^2."""

    name, env_id, camera = "halfcheetah_vel", "HalfCheetah-v5", "track"
    obs_dim, act_dim, horizon, task_dim = 17, 6, 200, 1

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        return 2.0 * torch.rand(n, 1, generator=generator, dtype=torch.float64)

    def reward(self, task: np.ndarray, info: dict[str, Any], action: np.ndarray, base_reward: float) -> float:
        return -abs(info["x_velocity"] - float(task[0])) - CONTROL_COST * float(np.square(action).sum())

    def describe(self, task: Tensor) -> str:
        return f"target velocity {float(task[0]):.2f}"


class HalfCheetahDir(MujocoFamily):
    """HalfCheetah running forward or backward (+1 / -1, equally likely): reward = direction *
    forward velocity - 0.05 |a|^2."""

    name, env_id, camera = "halfcheetah_dir", "HalfCheetah-v5", "track"
    obs_dim, act_dim, horizon, task_dim = 17, 6, 200, 1

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        return (2 * torch.randint(0, 2, (n, 1), generator=generator) - 1).to(torch.float64)

    def reward(self, task: np.ndarray, info: dict[str, Any], action: np.ndarray, base_reward: float) -> float:
        return float(task[0]) * info["x_velocity"] - CONTROL_COST * float(np.square(action).sum())

    def describe(self, task: Tensor) -> str:
        return "forward" if float(task[0]) > 0 else "backward"


class AntDir(MujocoFamily):
    """Ant running forward or backward along x: reward = direction * forward velocity + the
    environment's survival, control and contact terms; the episode ends when the ant is unhealthy.
    Contact forces are left out of the observation (27 dimensions, as in the MAML paper's ant)."""

    name, env_id, camera = "ant_dir", "Ant-v5", "track"
    make_kwargs: ClassVar[dict[str, Any]] = {"include_cfrc_ext_in_observation": False}
    obs_dim, act_dim, horizon, task_dim = 27, 8, 200, 1

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        return (2 * torch.randint(0, 2, (n, 1), generator=generator) - 1).to(torch.float64)

    def reward(self, task: np.ndarray, info: dict[str, Any], action: np.ndarray, base_reward: float) -> float:
        velocity = float(task[0]) * info["x_velocity"]
        return velocity + info["reward_ctrl"] + info["reward_contact"] + info["reward_survive"]

    def describe(self, task: Tensor) -> str:
        return "forward" if float(task[0]) > 0 else "backward"


class ReacherGoal(MujocoFamily):
    """The two-link MuJoCo reacher with a goal per task, drawn uniformly from the disc of radius 0.2
    (gymnasium's own goal range), held fixed across the task's episodes. The goal is hidden: the
    policy sees the joint angles (cos, sin), velocities and the fingertip position, and learns
    where the goal is from the reward (-distance - |a|^2)."""

    name, env_id = "reacher", "Reacher-v5"
    obs_dim, act_dim, horizon, task_dim = 8, 2, 50, 2

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        radius = 0.2 * torch.rand(n, generator=generator, dtype=torch.float64).sqrt()
        angle = 2 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)

    def set_task(self, env: Any, task: np.ndarray) -> None:
        qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
        qpos[-2:], qvel[-2:] = task, 0.0
        env.set_state(qpos, qvel)

    def observe(self, env: Any, obs: np.ndarray) -> np.ndarray:
        fingertip = env.get_body_com("fingertip")[:2]
        return np.concatenate([obs[:4], obs[6:8], fingertip]).astype(np.float64)

    def reward(self, task: np.ndarray, info: dict[str, Any], action: np.ndarray, base_reward: float) -> float:
        return base_reward

    def describe(self, task: Tensor) -> str:
        return f"goal ({task[0]:+.2f}, {task[1]:+.2f})"


FAMILIES: dict[str, type[TaskFamily]] = {
    f.name: f for f in (Navigation2D, HalfCheetahVel, HalfCheetahDir, AntDir, ReacherGoal)
}


def family(name: str) -> TaskFamily:
    if name not in FAMILIES:
        raise ConfigError(f"unknown RL task family {name!r}; choose one of {sorted(FAMILIES)}")
    return FAMILIES[name]()
