"""The configs of meta-RL's components: each task family as a dataset, the Gaussian policy as a model, and
MAML-RL as an algorithm (registered with ``fastadapt.components`` like every other component)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from fastadapt.components import AlgorithmConfig, DatasetConfig, ModelConfig, Run, TaskFamilyConfig, option, register
from fastadapt.errors import ConfigError
from fastadapt.nn.backbones import Activation
from fastadapt.rl.families import FAMILIES, Navigation2D, TaskFamily
from fastadapt.rl.mamlrl import MAMLRL, Outer, TestBaseline
from fastadapt.rl.policy import GaussianPolicy
from fastadapt.rl.tasks import RLTasks


@dataclass
class FamilyConfig(TaskFamilyConfig):
    """A task family of meta-RL; ``horizon`` is the steps per episode (``None``: the family's own)."""

    problem = "rl"
    inputs = "rl"
    horizon: int | None = option(None, minimum=1)

    def family(self) -> TaskFamily:
        return FAMILIES[self.name]()

    def tasks(self, split: str, ways: int, shots: int, queries: int, seed: int, augment: Any) -> RLTasks:
        return RLTasks(self.family(), seed=seed)  # the splits differ by seed: goals and velocities are continuous


@register("dataset", "nav2d")
@dataclass
class Navigation2DConfig(FamilyConfig):
    """2D navigation; ``action_scale`` multiplies the policy's actions before the [-0.1, 0.1] clip (0.1: the MAML
    code's rllab ``normalize`` wrapper, the policy acting in [-1, 1]; 1: the raw actions are clipped)."""

    action_scale: float = option(1.0, minimum=1e-6)

    def family(self) -> TaskFamily:
        return Navigation2D(action_scale=self.action_scale)


for _name in FAMILIES:
    if _name != Navigation2D.name:
        register("dataset", _name)(dataclass(type(f"{FAMILIES[_name].__name__}Config", (FamilyConfig,), {})))


@register("model", "policy")
@dataclass
class PolicyConfig(ModelConfig):
    """The Gaussian policy: an MLP of hidden ``layers`` widths and ``activation`` from observations to action means
    (``tanh`` is the default of earlier runs; the MAML paper's policy is ReLU)."""

    inputs = "rl"
    layers: list[int] = option([40, 40])
    activation: Activation = "tanh"

    def build(self, data: DatasetConfig, out_features: int | None, options: dict[str, Any]) -> nn.Module:
        assert isinstance(data, FamilyConfig)
        family = data.family()
        return GaussianPolicy(family.obs_dim, family.act_dim, hidden=self.layers, activation=self.activation)


@register("algorithm", "mamlrl")
@dataclass
class MAMLRLConfig(AlgorithmConfig):
    """MAML-RL: VPG inner steps on ``trajectories`` episodes per task, and the outer TRPO or PPO step."""

    problems = ("rl",)
    optimized = False  # MAMLRL.outer_step applies TRPO's (or PPO's) step itself
    learner = MAMLRL
    inner_lr: float = option(0.4, minimum=0)
    inner_steps: int = option(1, minimum=0)
    test_inner_steps: int | None = option(None, minimum=0)
    later_inner_lr: float | None = option(None, minimum=0)  # test-time steps after the first (None: inner_lr)
    first_order: bool = False
    trajectories: int = option(20, minimum=1)
    test_trajectories: int | None = option(None, minimum=1)  # per task and step when testing (None: trajectories)
    transitions: int | None = option(None, minimum=1)  # per task and step: collect until this many (the MAML code)
    test_transitions: int | None = option(None, minimum=1)  # the same when testing
    gamma: float = option(0.99, minimum=0)
    gae_lambda: float = option(1.0, minimum=0)
    outer: Outer = "trpo"
    max_kl: float = option(0.01, minimum=1e-9)
    ppo_clip: float = option(0.2, minimum=1e-9)
    ppo_epochs: int = option(5, minimum=1)
    ppo_lr: float = option(3e-4, minimum=1e-12)
    test_baseline: TestBaseline = "fitted"  # a test step's baseline: its own trajectories' or the last

    def check(self, run: Run) -> None:
        if run.model.name != "policy":
            raise ConfigError("mamlrl adapts a Gaussian policy: set model.name=policy")

    def build(self, model: nn.Module, run: Run) -> nn.Module:
        assert isinstance(run.dataset, FamilyConfig) and isinstance(model, GaussianPolicy)
        options = {k: v for k, v in dataclasses.asdict(self).items() if k != "vmap"}
        return MAMLRL(model, run.dataset.family(), horizon=run.dataset.horizon, **options)
