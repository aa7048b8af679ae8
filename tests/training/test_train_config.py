"""TrainConfig: the settings of a run, with their defaults and the checks of bad values."""

from __future__ import annotations

import dataclasses

import pytest

from fastadapt.config import build_config
from fastadapt.config.run import TrainSection
from fastadapt.errors import ConfigError
from fastadapt.training.settings import TrainConfig


def test_defaults_are_those_of_the_config_section() -> None:
    section = TrainSection()
    defaults = TrainConfig(steps=section.steps)
    shared = {field.name for field in dataclasses.fields(TrainSection)} & TrainConfig.names()
    assert shared == TrainConfig.names() - {"restore_best", "progress"}
    for name in shared:
        assert getattr(defaults, name) == getattr(section, name), name
    train = dataclasses.asdict(build_config("maml-sinusoid").train)
    assert TrainConfig.from_section(train) == TrainConfig(**{name: train[name] for name in shared})


def test_from_section_takes_the_loop_settings_and_the_overrides() -> None:
    section = {"steps": 10, "meta_batch": 4, "optimizer": "sgd", "augment": "none", "val_every": 5, "lr": 1}
    settings = TrainConfig.from_section(section, progress=False, val_every=2)
    assert settings == TrainConfig(steps=10, meta_batch=4, val_every=2, lr=1, progress=False)


def test_derived_values() -> None:
    assert TrainConfig(steps=1, val_every=7).checkpoint_interval == 7
    assert TrainConfig(steps=1, val_every=7, checkpoint_every=3).checkpoint_interval == 3
    assert TrainConfig(steps=1).budget_s is None
    assert TrainConfig(steps=1, max_minutes=1.5).budget_s == 90


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"steps": 0}, "steps must be an integer >= 1, got 0"),
        ({"steps": 2.0}, "steps must be an integer >= 1, got 2.0"),
        ({"steps": True}, "steps must be an integer >= 1, got True"),
        ({"meta_batch": 0}, "meta_batch must be an integer >= 1"),
        ({"val_every": -1}, "val_every must be an integer >= 1"),
        ({"val_episodes": 0}, "val_episodes must be an integer >= 1"),
        ({"log_every": 0}, "log_every must be an integer >= 1"),
        ({"checkpoint_every": 0}, "checkpoint_every must be an integer >= 1"),
        ({"lr_decay_every": -1}, "lr_decay_every must be an integer >= 0"),
        ({"lr": -0.1}, "lr must be a number >= 0, got -0.1"),
        ({"lr": None}, "lr must be a number >= 0, got None"),
        ({"lr_decay": "half"}, "lr_decay must be a number >= 0"),
        ({"grad_clip": -1}, "grad_clip must be a number >= 0 or None"),
        ({"max_minutes": 0}, "max_minutes must be a number > 0 or None"),
        ({"schedule": "exponential"}, "unknown schedule 'exponential'"),
        ({"schedule": "step"}, "schedule 'step' needs lr_decay_every >= 1"),
    ],
)
def test_bad_values_are_config_errors(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{"steps": 1, **settings})  # type: ignore[arg-type]


def test_replace_checks_again_and_settings_are_frozen() -> None:
    settings = TrainConfig(steps=1)
    with pytest.raises(ConfigError, match="meta_batch"):
        dataclasses.replace(settings, meta_batch=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.steps = 2  # type: ignore[misc]
