"""``TrainConfig``: the settings of a meta-training run, checked once when they are made."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fastadapt.errors import ConfigError
from fastadapt.training.schedule import check_schedule
from fastadapt.training.validation import check_selection


@dataclass(frozen=True)
class TrainConfig:
    """How ``meta_train`` trains: ``steps`` meta-updates on batches of ``meta_batch`` tasks, and around them.

    ``lr`` is the learning rate of the default optimizer (Adam), ``schedule`` its schedule (``lr_decay_every`` and
    ``lr_decay`` for ``step``), ``grad_clip`` the largest gradient norm (of each of the learner's ``clip_groups``).
    Validation runs every ``val_every`` updates on ``val_episodes`` tasks, ``last.pt`` is written every
    ``checkpoint_every`` updates (default ``val_every``) and a train record every ``log_every``. ``skip_nonfinite``
    skips a meta-batch with a non-finite loss or gradient instead of stopping; ``restore_best`` ends with the best
    validation state; ``max_minutes`` ends training once that much training time is spent; ``progress`` shows a
    progress bar and ``tensorboard`` also logs TensorBoard event files. ``patience`` stops early once that many
    meta-updates have passed since the best validation (Snell et al.'s early stopping). ``select`` is what makes a
    validation the best: the task metric (``metric``) or the query loss (``loss``, as Snell et al. chose both the
    early-stopping step and the retraining length). ``keep_best`` is how many checkpoints of the best validations
    are kept (``best.pt`` and, beyond one, ``top/step-N.pt``), which a top-k ensemble averages at test (MAML++: 5).
    """

    steps: int
    meta_batch: int = 32
    lr: float = 1e-3
    schedule: str = "constant"
    lr_decay_every: int = 0
    lr_decay: float = 0.5
    grad_clip: float | None = None
    val_every: int = 500
    val_episodes: int = 200
    checkpoint_every: int | None = None
    log_every: int = 10
    skip_nonfinite: bool = False
    restore_best: bool = True
    progress: bool = True
    max_minutes: float | None = None
    tensorboard: bool = False
    patience: int | None = None
    keep_best: int = 1
    select: str = "metric"

    def __post_init__(self) -> None:
        for name in ("steps", "meta_batch", "val_every", "val_episodes", "log_every", "keep_best"):
            _check_integer(name, getattr(self, name), minimum=1)
        if self.checkpoint_every is not None:
            _check_integer("checkpoint_every", self.checkpoint_every, minimum=1)
        if self.patience is not None:
            _check_integer("patience", self.patience, minimum=1)
        _check_integer("lr_decay_every", self.lr_decay_every, minimum=0)
        _check_number("lr", self.lr, minimum=0.0)
        _check_number("lr_decay", self.lr_decay, minimum=0.0)
        _check_number("grad_clip", self.grad_clip, minimum=0.0, optional=True)
        _check_number("max_minutes", self.max_minutes, minimum=0.0, optional=True, exclusive=True)
        check_schedule(self.schedule, self.lr_decay_every)
        check_selection(self.select)

    @property
    def checkpoint_interval(self) -> int:
        """Meta-updates between writes of ``last.pt``: ``checkpoint_every``, else ``val_every``."""
        return self.checkpoint_every or self.val_every

    @property
    def budget_s(self) -> float | None:
        """The time budget in seconds, if any."""
        return 60 * self.max_minutes if self.max_minutes is not None else None

    @classmethod
    def names(cls) -> frozenset[str]:
        """The names of the settings."""
        return frozenset(field.name for field in fields(cls))

    @classmethod
    def from_section(cls, section: Mapping[str, Any], **settings: Any) -> TrainConfig:
        """The settings of a resolved config's ``train`` section (whose ``optimizer`` and ``augment`` are
        built elsewhere), with ``settings`` (e.g. ``progress``) on top."""
        names = cls.names()
        return cls(**{**{key: value for key, value in section.items() if key in names}, **settings})


def _check_integer(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_number(name: str, value: object, minimum: float, *, optional: bool = False, exclusive: bool = False) -> None:
    """``value`` must be a number at least ``minimum`` (above it if ``exclusive``), or ``None`` if ``optional``."""
    if value is None and optional:
        return
    if (
        isinstance(value, bool) or not isinstance(value, numbers.Real)
        or value < minimum or (exclusive and value == minimum)
    ):
        relation = ">" if exclusive else ">="
        alternative = " or None" if optional else ""
        raise ConfigError(f"{name} must be a number {relation} {minimum:g}{alternative}, got {value!r}")
