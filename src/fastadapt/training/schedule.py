"""Learning-rate schedules over a run's meta-updates."""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch

from fastadapt.errors import ConfigError

Schedule = Literal["constant", "cosine", "linear", "step"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)


def check_schedule(schedule: str, decay_every: int) -> None:
    """Refuse an unknown schedule, and a ``step`` schedule without a decay interval, with a ``ConfigError``."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    if schedule == "step" and decay_every < 1:
        raise ConfigError("schedule 'step' needs lr_decay_every >= 1 (meta-updates between decays)")


def make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, steps: int, decay_every: int = 0, decay: float = 0.5
) -> torch.optim.lr_scheduler.LRScheduler:
    """Learning-rate schedule over ``steps`` meta-updates: ``constant``, ``cosine`` (to 0),
    ``linear`` (to 0, Reptile's outer step size) or ``step`` (times ``decay`` every ``decay_every``
    updates, ProtoNet's halving).

    The factors are plain functions, which ``LambdaLR`` leaves out of its state: checkpoints hold no code.
    """
    check_schedule(schedule, decay_every)
    if schedule == "constant":
        factor = lambda step: 1.0  # noqa: E731
    elif schedule == "cosine":
        factor = lambda step: 0.5 * (1 + math.cos(math.pi * min(step / steps, 1.0)))  # noqa: E731
    elif schedule == "linear":
        factor = lambda step: max(1.0 - step / steps, 0.0)  # noqa: E731
    else:
        factor = lambda step: decay ** (step // decay_every)  # noqa: E731
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
