"""Components register their typed configs beside their classes: adding an algorithm is one file.

This file is that one file for a toy algorithm: the learner, its config, and nothing else anywhere, and it trains
from a config like the built-in ones."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch.nn.functional as F
from torch import Tensor, nn

import fastadapt as fa
from fastadapt.algorithms.base import Predictor
from fastadapt.components import AlgorithmConfig, lookup, option, register, registered
from fastadapt.config import build_config, build_learner, resolve
from fastadapt.config.keys import key_lines
from fastadapt.errors import ConfigError
from fastadapt.experiment import read_config, run_experiment
from fastadapt.nn.functional import call
from fastadapt.tasks import ways_of


class NearestMean(fa.MetaLearner):
    """Classify a query by its scaled negative squared distance to each class's mean embedding."""

    name = "nearest_mean"

    def __init__(self, encoder: nn.Module, vmap: bool | None = None, scale: float = 1.0) -> None:
        super().__init__(loss="cross_entropy", vmap=vmap)
        self.encoder, self.scale = encoder, scale

    def adapt(
        self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None, ways: int | None = None
    ) -> Predictor:
        one_hot = F.one_hot(support_y, ways or ways_of(support_y)).to(support_x.dtype)
        centers = (one_hot.T @ call(self.encoder, support_x)) / one_hot.sum(0)[:, None]

        def predict(x: Tensor) -> Tensor:
            queries = call(self.encoder, x)
            return -self.scale * (queries[:, None, :] - centers[None]).pow(2).sum(-1)

        return predict


@register("algorithm", "nearest_mean")
@dataclass
class NearestMeanConfig(AlgorithmConfig):
    """The toy algorithm's one key, typed and checked like every built-in key."""

    learner = NearestMean
    scale: float = option(1.0, minimum=1e-6)


def test_a_registered_algorithm_is_named_by_configs_and_listed() -> None:
    assert lookup("algorithm", "nearest_mean") is NearestMeanConfig and "nearest_mean" in registered("algorithm")
    config = build_config("protonet-glyphs-5w1s", ["algorithm.name=nearest_mean", "algorithm.scale=0.5"])
    assert config.algorithm == NearestMeanConfig(scale=0.5)
    assert config.to_dict()["algorithm"] == {"name": "nearest_mean", "vmap": None, "scale": 0.5}  # protonet's keys went
    learner = build_learner(config)
    assert isinstance(learner, NearestMean) and learner.scale == 0.5
    assert "  algorithm.scale (default 1.0) for algorithm.name=nearest_mean" in key_lines()
    with pytest.raises(ConfigError, match="algorithm.scale must be at least 1e-06, got 0.0"):
        build_config("protonet-glyphs-5w1s", ["algorithm.name=nearest_mean", "algorithm.scale=0"])


def test_a_registered_algorithm_trains_from_a_config_and_its_run_reloads(glyphs_root: Path, tmp_path: Path) -> None:
    config = build_config("protonet-glyphs-5w1s", [
        "algorithm.name=nearest_mean", f"dataset.data_dir={glyphs_root}", "train.steps=6", "train.meta_batch=2",
        "train.val_every=3", "train.val_episodes=4", "test.episodes=5",
    ])
    result = run_experiment(config, tmp_path / "run", progress=False)
    assert result["algorithm"] == "nearest_mean" and result["train_steps"] == 6 and result["test"]["episodes"] == 5
    assert read_config(tmp_path / "run") == config


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register("algorithm", "maml")(dataclass(type("Other", (AlgorithmConfig,), {"learner": NearestMean})))
    with pytest.raises(ValueError, match="kind must be one of"):
        register("optimizer", "adam")


def test_each_built_in_config_builds_its_own_class() -> None:
    """The registry and the learners agree: a config named X builds a learner whose name is X."""
    for name, cls in registered("algorithm").items():
        if name in ("mamlrl", "nearest_mean"):
            continue
        preset = "maml-sinusoid" if name in ("maml", "metasgd", "anil", "reptile") else "protonet-glyphs-5w1s"
        config = build_config(preset, [f"algorithm.name={name}"])
        if name == "finetune":
            config = config.replace(algorithm=dataclasses.replace(config.algorithm, classes=10))
        assert build_learner(config).name == name, cls


def test_run_config_round_trips_and_refuses_what_does_not_apply() -> None:
    config = build_config("maml-omniglot-5w1s")
    assert resolve(config.to_dict()) == config and resolve(config) is config
    assert config.seed_of("train") == 0 and config.seed_of("val") == 1 and config.seed_of("test") == config.test.seed
    assert config.head_ways() == 5 and build_config("maml-sinusoid").head_ways() == 1
    assert build_config("protonet-glyphs-5w1s").head_ways() is None
    with pytest.raises(ValueError, match="split must be one of"):
        config.seed_of("holdout")


def test_a_list_default_is_copied_whole_for_each_config() -> None:
    @dataclass
    class Nested:
        layers: list[list[int]] = option([[1, 2], [3]])

    first, second = Nested(), Nested()
    first.layers[0].append(99)
    assert second.layers == [[1, 2], [3]]


def test_a_key_another_algorithm_has_names_this_ones_keys_without_the_shared_ones() -> None:
    with pytest.raises(ConfigError, match=r"algorithm.inner_lr does not apply to algorithm.name=protonet "
                                          r"\(its keys: \['distance', 'learn_temperature', 'temperature'\]\)"):
        build_config("protonet-glyphs-5w1s", ["algorithm.inner_lr=0.1"])
