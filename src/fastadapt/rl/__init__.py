"""Meta-reinforcement learning: task families (navigation, locomotion, a robot arm) and their task source,
Gaussian policies, policy-gradient machinery, the meta-RL learner protocol and MAML-RL."""

from fastadapt.rl.episodes import Episodes, advantages, collect, linear_baseline
from fastadapt.rl.families import (
    FAMILIES,
    AntDir,
    HalfCheetahDir,
    HalfCheetahVel,
    Navigation2D,
    ReacherGoal,
    TaskFamily,
    family,
)
from fastadapt.rl.learner import RLMetaLearner
from fastadapt.rl.mamlrl import MAMLRL, reinforce_loss
from fastadapt.rl.policy import GaussianPolicy
from fastadapt.rl.tasks import RLTaskBatch, RLTasks

__all__ = [
    "FAMILIES", "MAMLRL", "AntDir", "Episodes", "GaussianPolicy", "HalfCheetahDir", "HalfCheetahVel", "Navigation2D",
    "RLMetaLearner", "RLTaskBatch", "RLTasks", "ReacherGoal", "TaskFamily", "advantages", "collect", "family",
    "linear_baseline", "reinforce_loss",
]
