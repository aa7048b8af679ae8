"""The MAML paper's test-time protocol for MAML-RL: more trajectories per adaptation step when testing."""

from __future__ import annotations

import torch

from fastadapt.rl import MAMLRL, GaussianPolicy, family


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
