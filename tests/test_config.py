"""Presets, overrides and validation of run configs."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import fastadapt as fa
from fastadapt.config import (
    build_config,
    build_learner,
    flatten,
    load_preset,
    merge,
    parse_overrides,
    preset_names,
    resolve,
    unflatten,
)
from fastadapt.errors import ConfigError

PAPER_GRID = [
    f"{a}-omniglot-{s}"
    for a in ("maml", "fomaml", "metasgd", "anil", "reptile", "protonet")
    for s in ("5w1s", "5w5s", "20w1s", "20w5s")
]


def test_the_papers_presets_exist() -> None:
    assert set(PAPER_GRID) | {"maml-sinusoid", "protonet-glyphs-5w1s"} <= set(preset_names())


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_resolves_and_builds_its_learner(name: str) -> None:
    config = build_config(name)
    assert config.description, f"{name} has no description"
    if config.algorithm.name == "finetune":
        with pytest.raises(ConfigError, match="algorithm.classes"):
            build_learner(config)
        config = config.replace(algorithm=dataclasses.replace(config.algorithm, classes=100))  # set when a run starts
    learner = build_learner(config)
    assert learner.name == config.algorithm.name
    assert resolve(config.to_dict()) == config  # a run's config.yaml reloads as the same config
    assert yaml.safe_load(yaml.safe_dump(config.to_dict())) == config.to_dict()  # plain YAML types only


def test_extends_inherits_and_overrides() -> None:
    config = build_config("fomaml-omniglot-20w5s")
    assert (config.task.ways, config.task.shots, config.task.queries) == (20, 5, 5)  # MAML's: queries = shots
    assert config.algorithm.first_order is True and config.algorithm.inner_lr == 2.0  # type: ignore[attr-defined]
    assert config.algorithm.inner_steps == 5 and config.train.meta_batch == 16  # type: ignore[attr-defined]
    assert isinstance(build_learner(config), fa.MAML) and build_learner(config).model.head.out_features == 20


def test_maml_paper_settings() -> None:
    config = load_preset("maml-omniglot-5w1s")
    # 0.4 on the code's loss (summed over the support set, divided by the shots) is 2.0 on our mean loss
    assert config["algorithm"] == {"name": "maml", "inner_lr": 2.0, "inner_steps": 1, "test_inner_steps": 3,
                                   "adapt_batch_norm": False}  # its batch norm is outside the fast weights
    assert config["train"]["meta_batch"] == 32 and config["model"]["pool"] == "stride"
    paper = {"scheme": "random", "split_sizes": [1100, 100, 423], "split_seed": 1, "task_rotations": True,
             "resample": "nearest"}  # its code
    assert config["dataset"] == {"name": "omniglot", **paper, "image_size": 28}
    assert config["task"] == {"ways": 5, "shots": 1, "queries": 1}


def test_overrides_are_typed_by_yaml() -> None:
    config = build_config(
        "maml-omniglot-5w1s", ["train.steps=7", "algorithm.first_order=true", "train.lr=3e-4", "train.grad_clip=null"]
    )
    assert config.train.steps == 7 and config.algorithm.first_order is True  # type: ignore[attr-defined]
    assert config.train.lr == pytest.approx(3e-4) and config.train.grad_clip is None


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.stepz=3"], "unknown config key 'train.stepz'; did you mean 'train.steps'"),
        (["train.steps"], "not of the form key=value"),
        (["train.steps=ten"], "train.steps must be int"),
        (["task.shots=0"], "task.shots must be at least 1"),
        (["algorithm.first_order=maybe"], "algorithm.first_order must be bool"),
        (["train.schedule=exponential"], "train.schedule must be one of"),
        (
            ["algorithm.name=protonet", "algorithm.inner_lr=0.1"],
            "algorithm.inner_lr does not apply to algorithm.name=protonet",
        ),
        (["model.name=mlp"], "needs model.name=conv4"),
        (["model.layers=[40, 40, 40]"], "model.layers does not apply to model.name=conv4"),
        (["dataset.channels=1"], "dataset.channels does not apply to dataset.name=omniglot"),
        (["dataset.name=imagefolder"], "needs dataset.path"),
        (["dataset.name=imagefolder", "dataset.path=x", "dataset.scheme=vinyals"], "dataset.scheme does not apply"),
        (["model.pool=max", "dataset.image_size=12"], "needs images of at least 16 pixels, got dataset.image_size=12"),
        (["dataset.image_size=4"], "dataset.image_size must be at least 8"),
        (["algorithm.nme=maml"], "unknown config key 'algorithm.nme'; did you mean 'algorithm.name'"),
        (["algorithm.name=mamll"], "algorithm.name must be one of"),
        (["algorithm.name=''"], "algorithm.name must be one of"),  # an empty name is not the default one
        (["algorithm.name=0"], "algorithm.name must be one of"),
        (
            ["test.statistics=mine"],
            "test.statistics must be one of ['query', 'support', 'support_and_query', 'population'], got 'mine'",
        ),
        (["dataset.split_fractions=[0.5, 0.5]"], "does not apply"),
    ],
)
def test_bad_values_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        build_config("maml-omniglot-5w1s", overrides)


def test_population_statistics_are_refused_before_training_where_they_cannot_apply(tmp_path: Path) -> None:
    from fastadapt.experiment import run_experiment

    with pytest.raises(ConfigError, match="test.statistics=population is a batch-norm protocol of few-shot learning"):
        build_config("maml-rl-nav2d", ["test.statistics=population"])
    config = build_config("maml-sinusoid", ["test.statistics=population", "train.steps=1"])  # an MLP: no batch norm
    with pytest.raises(ConfigError, match="population statistics need batch-norm layers, and this model has none"):
        run_experiment(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()  # refused before the first update


def test_unknown_preset_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match="did you mean 'maml-omniglot-5w1s'"):
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
        (["algorithm.name=metasgd", "algorithm.inner_steps=0"], "algorithm.inner_steps must be at least 1, got 0"),
    ],
)
def test_bad_values_of_the_regression_preset(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config("maml-sinusoid", overrides)


def test_non_applicable_keys_are_dropped_from_the_resolved_config() -> None:
    config = build_config("protonet-glyphs-5w1s").to_dict()
    assert set(config["algorithm"]) == {"name", "vmap", "distance", "temperature", "learn_temperature"}
    assert "inner_lr" not in config["algorithm"] and "finetune_steps" not in config["algorithm"]
    assert "layers" not in config["model"] and "scheme" not in config["dataset"]
    assert set(build_config("maml-sinusoid").to_dict()["dataset"]) == {"name"}


def test_a_config_file_extends_a_preset_and_overrides_win(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("extends: maml-omniglot-5w1s\ntask: {shots: 5}\ntrain: {steps: 50}\n")
    (tmp_path / "mine.yaml").write_text("extends: base.yaml\ndescription: my run\ntrain:\n  lr: 3e-4\n")
    config = build_config(None, ["train.steps=7"], config_file=tmp_path / "mine.yaml")
    assert config.name == "mine" and config.description == "my run"
    assert (config.task.shots, config.train.steps, config.train.lr) == (5, 7, 3e-4)
    assert config.algorithm == build_config("maml-omniglot-5w1s").algorithm


@pytest.mark.parametrize(
    "text, message",
    [
        ("task: {ways: 5\n", r"mine.yaml is not valid YAML \(line 2, column 1\)"),
        ("- 1\n- 2\n", "must hold config keys .* not a list"),
        ("tsk: {ways: 5}\n", "unknown config key 'tsk'; did you mean 'task'"),
        ("task: 5\n", "task must be a section of key: value pairs"),
        ("task: {shots: 0}\n", "task.shots must be at least 1"),
        ("task: {ways: five}\n", r"task.ways must be int, got 'five' \(str\)"),
        ("extends: maml-omniglot-5w1\n", "unknown preset 'maml-omniglot-5w1'; did you mean"),
        ("extends: mine.yaml\n", "goes round in a circle"),
        ("extends: [a, b]\n", "extends must name a preset or a .yaml file"),
        ("extends: maml-omniglot-5w1s\nmodel: {layers: [4]}\n", "model.layers does not apply to model.name=conv4"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "mine.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        build_config(None, config_file=tmp_path / "mine.yaml")


@pytest.mark.parametrize(
    "values, message",
    [
        ({"train.lr": math.nan}, "train.lr must be a finite number, got nan"),
        ({"algorithm.inner_lr": math.inf}, "algorithm.inner_lr must be a finite number, got inf"),
        ({"task": 5, "task.ways": 3}, "task is given both as a value and as a section"),
    ],
)
def test_non_finite_numbers_and_clashing_keys_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(merge(load_preset("maml-omniglot-5w1s"), unflatten(values)))


def test_missing_binary_and_conflicting_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="there is no config file"):
        build_config(None, config_file=tmp_path / "nope.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError, match="is not a text"):
        build_config(None, config_file=tmp_path / "bin.yaml")
    with pytest.raises(ConfigError, match="not both"):
        build_config("maml-omniglot-5w1s", config_file=tmp_path / "bin.yaml")


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(-3, 100), max_size=4),
)
_KNOWN = sorted(flatten(build_config("maml-omniglot-5w1s").to_dict()))
_KEYS = (
    st.sampled_from(_KNOWN + ["task", "train", "algorithm", "model.layers", "dataset.path"])
    | st.text(min_size=1, max_size=20)
)


def _assert_typed(section: object) -> None:
    """Every field of a resolved section holds a value of its declared type, at least its declared minimum."""
    hints = typing.get_type_hints(type(section))
    for field in dataclasses.fields(section):  # type: ignore[arg-type]
        value, hint = getattr(section, field.name), hints[field.name]
        allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, type(int | None)) else (hint,)
        kinds = tuple(typing.get_origin(a) or a for a in allowed if typing.get_origin(a) is not typing.Literal)
        literals = [v for a in allowed if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]
        assert (
            (kinds and isinstance(value, kinds)) or value in literals or (value is None and type(None) in allowed)
        ), field
        if field.metadata.get("minimum") is not None and isinstance(value, (int, float)):
            assert value >= field.metadata["minimum"]


@settings(max_examples=300, deadline=None)
@given(values=st.dictionaries(_KEYS, _SCALARS, max_size=6))
def test_any_config_resolves_to_a_valid_one_or_a_config_error(values: dict[str, object]) -> None:
    """Whatever keys and values a user writes, the parser either accepts them (and every kept value
    has its key's type and passes its key's checks) or raises ConfigError: never another exception."""
    try:
        config = resolve(merge(load_preset("maml-omniglot-5w1s"), unflatten(values)))
    except ConfigError:
        return
    for name in ("dataset", "task", "train_task", "model", "algorithm", "train", "test"):
        _assert_typed(getattr(config, name))
    flat = flatten(config.to_dict())
    for key, value in values.items():  # what was kept is what was given (ints widened to floats)
        if key in flat and value is not None and not isinstance(value, bool):
            assert flat[key] == value or isinstance(value, (int, float)) and math.isclose(flat[key], float(value))
    assert resolve(config.to_dict()) == config


def test_a_config_stored_by_an_earlier_version_with_every_key_still_loads(tmp_path: Path) -> None:
    from fastadapt.experiment import read_config

    stored = build_config("maml-sinusoid").to_dict()
    # written by 0.1 before the keys applied per dataset
    stored["dataset"].update({"scheme": "vinyals", "image_size": 28, "rotations": False})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored))
    config = read_config(tmp_path)
    assert config.dataset == build_config("maml-sinusoid").dataset
    with pytest.raises(ConfigError, match="does not apply to dataset.name=sinusoid"):
        resolve(stored)  # a config the user writes is still checked strictly
