"""The gymnasium side of the MuJoCo task families: a wrapper that gives an environment its task's
reward and observation, and the vector of them that samples a meta-batch. The families
(``fastadapt.rl.families.MujocoFamily``) import this module when they build environments; it
needs of them only what ``TaskRewards`` lists, so it does not import them back."""

from __future__ import annotations

import functools
import warnings
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import Tensor

from fastadapt.errors import ConfigError
from fastadapt.rl.episodes import VectorTasks

try:
    import gymnasium as gym
    import mujoco
except ImportError:  # pragma: no cover - the message is the point
    raise ConfigError(
        "the MuJoCo task families need gymnasium and MuJoCo: pip install 'fastadapt[rl]' (gymnasium[mujoco])"
    ) from None


def _mujoco_warning(message: str) -> None:
    """MuJoCo's warnings as Python warnings, except the deprecation notice that gymnasium's own model
    files trigger on every environment created (a meta-batch creates hundreds)."""
    if "settotalmass" not in message:
        warnings.warn(f"MuJoCo: {message.strip()}", RuntimeWarning, stacklevel=2)


mujoco.set_mju_user_warning(_mujoco_warning)


class TaskRewards(Protocol):
    """What a MuJoCo family tells the simulator: the environment, and its task's reward and observation."""

    @property
    def env_id(self) -> str: ...

    @property
    def make_kwargs(self) -> dict[str, Any]: ...

    @property
    def camera(self) -> str | None: ...

    @property
    def obs_dim(self) -> int: ...

    def reward(self, task: np.ndarray, info: dict[str, Any], action: np.ndarray, base_reward: float) -> float: ...

    def observe(self, env: Any, obs: np.ndarray) -> np.ndarray: ...

    def set_task(self, env: Any, task: np.ndarray) -> None: ...


class TaskEnv(gym.Wrapper):
    """A gymnasium environment running one task: the family's reward and observation."""

    def __init__(self, env: gym.Env, family: TaskRewards, task: np.ndarray) -> None:
        super().__init__(env)
        self.family, self.task = family, np.asarray(task, dtype=np.float64)
        bound = np.full(family.obs_dim, np.inf)
        self.observation_space = gym.spaces.Box(-bound, bound, dtype=np.float64)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.family.set_task(self.env.unwrapped, self.task)
        return self.family.observe(self.env.unwrapped, obs), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, base, terminated, truncated, info = self.env.step(action)
        reward = self.family.reward(self.task, info, np.asarray(action), float(base))
        return self.family.observe(self.env.unwrapped, obs), reward, terminated, truncated, info


def make_task_env(family: TaskRewards, task: np.ndarray, horizon: int, render: bool = False) -> TaskEnv:
    options: dict[str, Any] = {"render_mode": "rgb_array", "width": 256, "height": 192} if render else {}
    if render and family.camera:
        options["camera_name"] = family.camera
    return TaskEnv(gym.make(family.env_id, max_episode_steps=horizon, **family.make_kwargs, **options), family, task)


class MujocoVector(VectorTasks):
    """Every episode of a meta-batch in one ``SyncVectorEnv``; actions are clipped to the bounds."""

    def __init__(self, family: TaskRewards, tasks: np.ndarray, horizon: int) -> None:
        self.vector = gym.vector.SyncVectorEnv(
            [functools.partial(make_task_env, family, t, horizon) for t in tasks],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        space = cast(gym.spaces.Box, self.vector.single_action_space)  # the MuJoCo tasks act continuously
        self.low = torch.as_tensor(space.low, dtype=torch.float64)
        self.high = torch.as_tensor(space.high, dtype=torch.float64)

    def reset(self, seed: int) -> Tensor:
        obs, _ = self.vector.reset(seed=seed)
        return torch.as_tensor(obs, dtype=torch.float64)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        clipped = torch.max(torch.min(actions.to(torch.float64), self.high), self.low)
        obs, reward, terminated, truncated, _ = self.vector.step(clipped.numpy())
        done = torch.as_tensor(np.logical_or(terminated, truncated))
        return torch.as_tensor(obs, dtype=torch.float64), torch.as_tensor(reward, dtype=torch.float64), done

    def close(self) -> None:
        self.vector.close()
