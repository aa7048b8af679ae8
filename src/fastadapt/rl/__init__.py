"""Meta-reinforcement learning: task families (navigation, locomotion, a robot arm), Gaussian
policies, policy-gradient machinery and MAML-RL."""

from fastadapt.rl.episodes import Episodes, advantages, collect, linear_baseline
from fastadapt.rl.families import FAMILIES, AntDir, HalfCheetahDir, HalfCheetahVel, Navigation2D, ReacherGoal, TaskFamily, family
from fastadapt.rl.mamlrl import MAMLRL, RLTaskBatch, RLTasks, reinforce_loss
from fastadapt.rl.policy import GaussianPolicy

__all__ = [
    "FAMILIES", "MAMLRL", "AntDir", "Episodes", "GaussianPolicy", "HalfCheetahDir", "HalfCheetahVel", "Navigation2D", "RLTaskBatch",
    "RLTasks", "ReacherGoal", "TaskFamily", "advantages", "collect", "family", "linear_baseline", "reinforce_loss",
]
