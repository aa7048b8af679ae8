"""Trajectories of a meta-batch, and what policy gradients need from them: returns, a linear
feature baseline fitted per task, and generalized advantage estimates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from fastadapt.rl.policy import sample


class VectorTasks:
    """``n_tasks * per_task`` episodes stepping together; episode ``b`` belongs to task ``b // per_task``."""

    def reset(self, seed: int) -> Tensor:
        """Observations ``[B, obs_dim]`` at the start of every episode."""
        raise NotImplementedError

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Apply ``actions [B, act_dim]``; next observations, rewards ``[B]`` and ``done [B]`` (episode ended)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the simulators."""


@dataclass
class Episodes:
    """``per_task`` episodes of each of ``n_tasks`` tasks, time-major: ``obs [T, B, obs_dim]``,
    ``actions [T, B, act_dim]``, ``rewards [T, B]`` and ``mask [T, B]`` (1 while the episode runs),
    with ``B = n_tasks * per_task`` and episode ``b`` belonging to task ``b // per_task``."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    mask: Tensor
    per_task: int

    @property
    def n_tasks(self) -> int:
        return self.obs.shape[1] // self.per_task

    def columns(self, i: int) -> slice:
        """Where task ``i``'s episodes are along the batch dimension."""
        return slice(i * self.per_task, (i + 1) * self.per_task)

    def task(self, i: int) -> Episodes:
        """The episodes of task ``i``."""
        cols = self.columns(i)
        return Episodes(
            self.obs[:, cols], self.actions[:, cols], self.rewards[:, cols], self.mask[:, cols], self.per_task
        )

    def returns(self) -> Tensor:
        """Undiscounted return of each task, averaged over its episodes (those not dropped by ``first_transitions``):
        ``[n_tasks]``."""
        total = (self.rewards * self.mask).sum(dim=0).view(self.n_tasks, self.per_task)
        present = self.mask[0].view(self.n_tasks, self.per_task)
        return total.sum(dim=1) / present.sum(dim=1)

    def lengths(self) -> Tensor:
        """Steps of each episode ``[B]`` (0 for an episode dropped by ``first_transitions``)."""
        return self.mask.sum(dim=0)

    def first_transitions(self, budget: int) -> Episodes:
        """Each task's first episodes, in order, until they hold ``budget`` transitions (the one that reaches it
        included), as a sampler that collects transitions rather than episodes keeps them (rllab's, the MAML
        code's); the others are dropped (masked out), and the columns no task keeps are removed."""
        lengths = self.lengths().view(self.n_tasks, self.per_task)
        before = lengths.cumsum(dim=1) - lengths
        keep = before < budget
        width = int(keep.sum(dim=1).max())
        keep = keep[:, :width].reshape(-1).to(self.mask.dtype)

        def columns(t: Tensor) -> Tensor:
            return _episode_major(self.by_task(t)[:, :, :width])

        return Episodes(columns(self.obs), columns(self.actions), columns(self.rewards) * keep,
                        columns(self.mask) * keep, width)

    def by_task(self, t: Tensor) -> Tensor:
        """One of these episodes' time-major fields (``[T, B, ...]``) as ``[T, n_tasks, per_task, ...]``."""
        return t.view(t.shape[0], self.n_tasks, self.per_task, *t.shape[2:])

    @staticmethod
    def join(parts: list[Episodes]) -> Episodes:
        """The episodes of several collections of the same tasks, each task's in collection order (shorter
        collections padded with masked-out steps)."""
        steps = max(part.mask.shape[0] for part in parts)

        def joined(field: str) -> Tensor:
            tensors = []
            for part in parts:
                t = getattr(part, field)
                padding = t.new_zeros(steps - t.shape[0], *t.shape[1:])
                if field == "obs" and padding.shape[0]:
                    padding = t[-1:].expand_as(padding)  # steps after an episode's end repeat its last observation
                tensors.append(part.by_task(torch.cat([t, padding])))
            return _episode_major(torch.cat(tensors, dim=2))

        return Episodes(joined("obs"), joined("actions"), joined("rewards"), joined("mask"),
                        sum(part.per_task for part in parts))


def _episode_major(t: Tensor) -> Tensor:
    """``[T, n_tasks, per_task, ...]`` back to ``[T, B, ...]``: the inverse of ``Episodes.by_task``."""
    return t.reshape(t.shape[0], -1, *t.shape[3:])


def collect(
    envs: VectorTasks, policy: Callable[[Tensor], Tensor], horizon: int, per_task: int, seed: int,
    generator: torch.Generator | None = None,
) -> Episodes:
    """Run ``policy`` (observations -> outputs) for ``horizon`` steps in every episode of ``envs``.

    Steps after an episode ended are masked out (their observations repeat the last one).
    """
    obs = envs.reset(seed)
    alive = torch.ones(obs.shape[0], dtype=torch.float64)
    observations, actions, rewards, masks = [], [], [], []
    with torch.no_grad():
        for _ in range(horizon):
            action = sample(policy(obs.to(torch.get_default_dtype())), generator).to(torch.float64)
            next_obs, reward, done = envs.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward * alive)
            masks.append(alive)
            alive = alive * (~done).to(torch.float64)
            obs = torch.where(alive[:, None] > 0, next_obs, obs)
            if not bool(alive.any()):
                break
    return Episodes(torch.stack(observations), torch.stack(actions), torch.stack(rewards), torch.stack(masks), per_task)


def _features(episodes: Episodes) -> Tensor:
    """Duan et al. (2016)'s baseline features per step: obs, obs^2, time, time^2, time^3, 1."""
    steps, batch = episodes.mask.shape
    obs = episodes.obs.clamp(-10, 10)
    time = (torch.arange(steps, dtype=torch.float64) / 100.0)[:, None, None].expand(steps, batch, 1)
    ones = torch.ones(steps, batch, 1, dtype=torch.float64)
    return torch.cat([obs, obs.pow(2), time, time.pow(2), time.pow(3), ones], dim=2)


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """Reward-to-go ``sum_k gamma^k r_{t+k}`` at every step ``[T, B]``."""
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running * mask[t]
        out[t] = running
    return out * mask


def linear_baseline(episodes: Episodes, gamma: float, coefficients: Tensor | None = None) -> Tensor:
    """Values ``[T, B]`` of a linear baseline on ``_features``: with ``coefficients`` (``baseline_fit``) given, those;
    else fitted on these episodes (one task's)."""
    features = _features(episodes)
    if coefficients is None:
        coefficients = _regression(features, episodes, gamma)
    return (features @ coefficients).squeeze(-1) * episodes.mask


def unfitted_baseline(episodes: Episodes) -> Tensor:
    """The coefficients of a baseline fitted on nothing: values of zero (rllab's before its first fit)."""
    return torch.zeros(_features(episodes).shape[-1], 1, dtype=torch.float64)


def baseline_fit(episodes: Episodes, gamma: float) -> Tensor:
    """The coefficients of a linear regression of the discounted returns on ``_features`` over these episodes (one
    task's)."""
    return _regression(_features(episodes), episodes, gamma)


def _regression(features: Tensor, episodes: Episodes, gamma: float, reg: float = 1e-5) -> Tensor:
    """``baseline_fit`` on the episodes' ``features``, with ridge regularisation raised until the solve succeeds."""
    weights = episodes.mask.reshape(-1, 1)
    x = features.reshape(-1, features.shape[-1]) * weights
    y = discounted_returns(episodes.rewards, episodes.mask, gamma).reshape(-1, 1) * weights
    gram, target = x.T @ x, x.T @ y
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    for _ in range(6):
        try:
            coef = torch.linalg.solve(gram + reg * eye, target)
            if bool(torch.isfinite(coef).all()):
                break
        except RuntimeError:
            pass
        reg *= 10
    else:
        coef = torch.zeros_like(target)
    return coef


def advantages(
    episodes: Episodes, gamma: float = 0.99, gae_lambda: float = 1.0, normalize: bool = True,
    baselines: list[Tensor] | None = None,
) -> Tensor:
    """Generalized advantage estimates ``[T, B]`` against each task's linear baseline, normalised
    per task to zero mean and unit variance over its valid steps (as the MAML code does). The baseline is fitted on
    the task's own episodes, or is ``baselines[i]`` (coefficients, ``baseline_fit``) where given."""
    out = torch.zeros_like(episodes.rewards)
    for i in range(episodes.n_tasks):
        part = episodes.task(i)
        values = linear_baseline(part, gamma, None if baselines is None else baselines[i])
        next_mask = torch.cat([part.mask[1:], torch.zeros_like(part.mask[:1])])
        next_values = torch.cat([values[1:], torch.zeros_like(values[:1])]) * next_mask
        deltas = (part.rewards + gamma * next_values - values) * part.mask
        gae = torch.zeros_like(deltas)
        running = torch.zeros_like(deltas[0])
        for t in range(deltas.shape[0] - 1, -1, -1):
            running = deltas[t] + gamma * gae_lambda * running * (part.mask[t + 1] if t + 1 < deltas.shape[0] else 0)
            gae[t] = running
        gae = gae * part.mask
        if normalize:
            n = part.mask.sum()
            mean = gae.sum() / n
            std = (((gae - mean) * part.mask).pow(2).sum() / n).sqrt()
            gae = (gae - mean) / (std + 1e-8) * part.mask
        out[:, episodes.columns(i)] = gae
    return out
