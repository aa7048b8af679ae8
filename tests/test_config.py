"""Presets, overrides and validation of run configs."""

from __future__ import annotations

import re

import pytest

import fastadapt as fa
from fastadapt.config import build_config, build_learner, load_preset, parse_overrides, preset_names, resolve
from fastadapt.errors import ConfigError

PAPER_GRID = [f"{a}-omniglot-{s}" for a in ("maml", "fomaml", "metasgd", "anil", "reptile", "protonet") for s in ("5w1s", "5w5s", "20w1s", "20w5s")]


def test_the_papers_presets_exist() -> None:
    assert set(PAPER_GRID) | {"maml-sinusoid", "protonet-glyphs-5w1s"} <= set(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_resolves_and_builds_its_learner(name: str) -> None:
    config = build_config(name)
    assert config["description"], f"{name} has no description"
    learner = build_learner(config)
    assert learner.name == config["algorithm"]["name"]
    assert resolve(config) == config  # resolving is idempotent: a run's config.yaml reloads as is


def test_extends_inherits_and_overrides() -> None:
    config = build_config("fomaml-omniglot-20w5s")
    assert config["task"] == {"ways": 20, "shots": 5, "queries": 15}
    assert config["algorithm"]["first_order"] is True and config["algorithm"]["inner_lr"] == 0.1
    assert config["algorithm"]["inner_steps"] == 5 and config["train"]["meta_batch"] == 16
    assert isinstance(build_learner(config), fa.MAML) and build_learner(config).model.head.out_features == 20


def test_maml_paper_settings() -> None:
    config = load_preset("maml-omniglot-5w1s")
    assert config["algorithm"] == {"name": "maml", "inner_lr": 0.4, "inner_steps": 1, "test_inner_steps": 3}
    assert config["train"]["meta_batch"] == 32 and config["model"]["pool"] == "stride" and config["dataset"]["rotations"]


def test_overrides_are_typed_by_yaml() -> None:
    config = build_config("maml-omniglot-5w1s", ["train.steps=7", "algorithm.first_order=true", "train.lr=3e-4", "train.grad_clip=null"])
    assert config["train"]["steps"] == 7 and config["algorithm"]["first_order"] is True
    assert config["train"]["lr"] == pytest.approx(3e-4) and config["train"]["grad_clip"] is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.stepz=3"], "unknown config key 'train.stepz'; did you mean 'train.steps'"),
        (["train.steps"], "not of the form key=value"),
        (["train.steps=ten"], "train.steps must be int"),
        (["task.shots=0"], "task.shots must be at least 1"),
        (["algorithm.first_order=maybe"], "algorithm.first_order must be bool"),
        (["train.schedule=exponential"], "train.schedule must be one of"),
        (["algorithm.name=protonet", "algorithm.inner_lr=0.1"], "algorithm.inner_lr does not apply to algorithm.name=protonet"),
        (["model.name=mlp"], "needs model.name=conv4"),
        (["model.layers=[40, 40, 40]"], "model.layers does not apply to model.name=conv4"),
        (["dataset.channels=1"], "dataset.channels does not apply to dataset.name=omniglot"),
        (["dataset.name=imagefolder", "dataset.scheme=vinyals", "dataset.download=false", "dataset.rotations=false"], "needs dataset.path"),
        (["dataset.split_fractions=[0.5, 0.5]"], "does not apply"),
    ],
)
def test_bad_values_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        build_config("maml-omniglot-5w1s", overrides)


def test_unknown_preset_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match="did you mean maml-omniglot-5w1s"):
        load_preset("maml-omniglot-5w1")


def test_parse_overrides_nests_keys() -> None:
    assert parse_overrides(["task.ways=20", "seed=3"]) == {"task": {"ways": 20}, "seed": 3}


def test_protonet_is_refused_for_regression() -> None:
    with pytest.raises(ConfigError, match="protonet classifies"):
        build_config("protonet-glyphs-5w1s", ["dataset.name=sinusoid", "model.name=mlp"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.layers=[40, -1]"], "model.layers must be a list of positive integers"),
        (["algorithm.inner_steps=0"], "algorithm.inner_steps must be at least 1"),
    ],
)
def test_bad_values_of_the_regression_preset(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config("maml-sinusoid", overrides)


def test_non_applicable_keys_are_dropped_from_the_resolved_config() -> None:
    config = build_config("protonet-glyphs-5w1s")
    assert set(config["algorithm"]) == {"name", "vmap"}
    assert "layers" not in config["model"] and "scheme" not in config["dataset"]
    assert set(build_config("maml-sinusoid")["dataset"]) == {"name"}
