"""Run configuration: YAML presets, ``key=value`` overrides, validation, and building the run's parts.

A config is a nested dict with sections ``dataset``, ``task``, ``train_task``, ``model``,
``algorithm``, ``train`` and ``test``. Every key is declared in ``SCHEMA`` with its type and default,
so that a misspelt key or an impossible value is named in the error instead of surfacing later.

``model.target`` and ``dataset.target`` name your own model and dataset as importable factories
(``module:function``, see ``fastadapt.targets``), called with ``model.kwargs`` and with ``split=`` plus
``dataset.kwargs``; giving a target makes the section's ``name`` ``custom`` and drops the built-in keys
the section inherited (``merge``). A model factory returns an ``nn.Module``: the encoder of the embedding
methods (finetune, siamese and matchingnet with fce also read its ``embedding_dim`` attribute), or for maml,
metasgd, anil and reptile the classifier, which must output as many logits as the tasks have ways (give the
width in ``model.kwargs``). A dataset factory returns a ``ClassDataset`` or a map-style
``torch.utils.data.Dataset`` of ``(x, label)`` pairs, given to ``FewShotTasks`` as is. fastadapt does not
know how such data was made, so the image machinery of the built-in datasets is refused for it in one line
instead of guessed: ``dataset.rotations``, ``train.augment`` and ``algorithm.distortions`` (transform the data
in your dataset, whose factory is told the split) and ``fastadapt predict`` (which reads image files). Your own
data needs your own model; a built-in backbone can be named as one, e.g. ``model.target=fastadapt.nn:MLP``.
"""

from __future__ import annotations

import copy
import importlib.resources
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import Dataset

from fastadapt.algorithms import ALGORITHMS, EMBEDDING_ALGORITHMS, MetaLearner
from fastadapt.augment import AUGMENTATIONS
from fastadapt.datasets import CIFARFS, CUB, FC100, ClassDataset, Glyphs, ImageFolder, MiniImageNet, Omniglot, TieredImageNet
from fastadapt.datasets.glyphs import preprocessing as glyphs_preprocessing
from fastadapt.datasets.images import Preprocessing
from fastadapt.datasets.omniglot import preprocessing as omniglot_preprocessing
from fastadapt.errors import ConfigError, did_you_mean
from fastadapt.nn.backbones import MLP, Conv4, ResNet12
from fastadapt.nn.functional import call
from fastadapt.regression import SinusoidTasks
from fastadapt.rl.families import FAMILIES, family
from fastadapt.rl.mamlrl import MAMLRL, RLTasks
from fastadapt.rl.policy import GaussianPolicy
from fastadapt.targets import call_target, one_line, split_target
from fastadapt.tasks import FewShotTasks, TaskDistribution


@dataclass(frozen=True)
class Key:
    """One config key: its type(s), default, and the values it may take."""

    types: tuple[type, ...]
    default: Any
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    nullable: bool = False


def _k(types: type | tuple[type, ...], default: Any, choices: Iterable[Any] | None = None, minimum: float | None = None) -> Key:
    kinds = types if isinstance(types, tuple) else (types,)
    return Key(kinds, default, tuple(choices) if choices is not None else None, minimum, nullable=default is None)


GRADIENT_ALGORITHMS = ("maml", "metasgd", "anil", "reptile")
GRADIENT_KEYS = (
    "inner_lr", "inner_steps", "test_inner_steps", "first_order", "per_step_lr",
    "multi_step_loss", "multi_step_loss_steps", "first_order_until", "checkpoint_inner",
)
ALGORITHM_KEYS: dict[str, tuple[str, ...]] = {
    "maml": GRADIENT_KEYS,
    "metasgd": tuple(k for k in GRADIENT_KEYS if k != "per_step_lr"),
    "anil": GRADIENT_KEYS,
    "reptile": ("inner_lr", "inner_steps", "test_inner_steps"),
    "protonet": ("distance", "temperature", "learn_temperature"),
    "matchingnet": ("fce", "fce_steps", "temperature", "learn_temperature"),
    "relationnet": (),
    "siamese": ("distortions",),
    "finetune": ("head", "scale", "finetune_steps", "finetune_lr", "finetune_body", "classes"),
    "mamlrl": (
        "inner_lr", "inner_steps", "test_inner_steps", "first_order", "trajectories", "gamma", "gae_lambda", "outer", "max_kl",
        "ppo_clip", "ppo_epochs", "ppo_lr",
    ),
}
CUSTOM = "custom"  # the `name` of a section that a `target` (your own factory) builds
TARGET_SECTIONS = ("dataset", "model")
BENCHMARKS = {"miniimagenet": MiniImageNet, "tieredimagenet": TieredImageNet, "cifarfs": CIFARFS, "fc100": FC100, "cub": CUB}
# Which keys of a section apply, by the section's `name` (besides `name` itself and COMMON_KEYS).
APPLICABLE: dict[str, dict[str, tuple[str, ...]]] = {
    "algorithm": ALGORITHM_KEYS,
    "dataset": {
        "glyphs": ("data_dir", "image_size", "rotations"),
        "omniglot": ("data_dir", "scheme", "image_size", "rotations", "download"),
        "imagefolder": ("path", "image_size", "channels", "invert", "rotations", "split_seed", "split_fractions"),
        **{name: ("data_dir", "image_size", "download") for name in BENCHMARKS},
        **{name: ("horizon",) for name in FAMILIES},
        "sinusoid": (),
        CUSTOM: ("target", "kwargs"),
    },
    "model": {
        "conv4": ("hidden", "pool", "channels_last"), "resnet12": ("channels_last",), "mlp": ("layers",),
        "policy": ("layers",), CUSTOM: ("target", "kwargs"),
    },
}
COMMON_KEYS = {"algorithm": ("vmap",), "dataset": (), "model": ()}

SCHEMA: dict[str, Key] = {
    "name": _k(str, "custom"),
    "description": _k(str, ""),
    "seed": _k(int, 0),
    "device": _k(str, "auto"),
    "deterministic": _k(bool, False),
    "dataset.name": _k(
        str, "glyphs", ("glyphs", "omniglot", "imagefolder", *BENCHMARKS, "sinusoid", *FAMILIES, CUSTOM)
    ),
    "dataset.target": _k(str, None),  # your own dataset: module:function, called with split= and dataset.kwargs
    "dataset.kwargs": _k(dict, {}),
    "dataset.horizon": _k(int, None, minimum=1),  # RL: steps per episode (None: the family's, e.g. 100 for nav2d)
    "dataset.path": _k(str, None),
    "dataset.scheme": _k(str, "vinyals", ("vinyals", "lake")),
    "dataset.image_size": _k(int, None, minimum=16),  # None: the dataset's own (28 Omniglot, 84 miniImageNet, 32 CIFAR)
    "dataset.channels": _k(int, 3, (1, 3)),
    "dataset.invert": _k(bool, False),
    "dataset.rotations": _k(bool, False),
    "dataset.download": _k(bool, False),
    "dataset.data_dir": _k(str, None),
    "dataset.split_seed": _k(int, 0),
    "dataset.split_fractions": _k(list, [0.6, 0.2, 0.2]),
    "task.ways": _k(int, 5, minimum=2),
    "task.shots": _k(int, 1, minimum=1),
    "task.queries": _k(int, 15, minimum=1),
    "train_task.ways": _k(int, None, minimum=2),
    "train_task.shots": _k(int, None, minimum=1),
    "train_task.queries": _k(int, None, minimum=1),
    "model.name": _k(str, "conv4", ("conv4", "resnet12", "mlp", "policy", CUSTOM)),
    "model.target": _k(str, None),  # your own model: module:function, called with model.kwargs, returns an nn.Module
    "model.kwargs": _k(dict, {}),
    "model.hidden": _k(int, 64, minimum=1),
    "model.pool": _k(str, "max", ("max", "stride")),
    "model.layers": _k(list, [40, 40]),
    "model.channels_last": _k(bool, False),
    "algorithm.name": _k(str, "maml", (*ALGORITHMS, "mamlrl")),
    "algorithm.vmap": _k(bool, None),
    "algorithm.inner_lr": _k((float, int), 0.4, minimum=0),
    "algorithm.inner_steps": _k(int, 1, minimum=0),
    "algorithm.test_inner_steps": _k(int, None, minimum=0),
    "algorithm.first_order": _k(bool, False),
    "algorithm.per_step_lr": _k(bool, False),
    "algorithm.multi_step_loss": _k(bool, False),
    "algorithm.multi_step_loss_steps": _k(int, 0, minimum=0),
    "algorithm.first_order_until": _k(int, 0, minimum=0),
    "algorithm.checkpoint_inner": _k(bool, False),
    "algorithm.distance": _k(str, "euclidean", ("euclidean", "cosine")),
    "algorithm.temperature": _k((float, int), 1.0, minimum=1e-6),
    "algorithm.learn_temperature": _k(bool, False),
    "algorithm.fce": _k(bool, False),
    "algorithm.fce_steps": _k(int, 5, minimum=1),
    "algorithm.distortions": _k(bool, False),
    "algorithm.head": _k(str, "linear", ("linear", "cosine")),
    "algorithm.scale": _k((float, int), 10.0, minimum=1e-6),
    "algorithm.finetune_steps": _k(int, 100, minimum=0),
    "algorithm.finetune_lr": _k((float, int), 0.1, minimum=1e-9),
    "algorithm.finetune_body": _k(bool, False),
    "algorithm.classes": _k(int, None, minimum=2),
    "algorithm.trajectories": _k(int, 20, minimum=1),  # RL: episodes per task and adaptation step
    "algorithm.gamma": _k((float, int), 0.99, minimum=0),
    "algorithm.gae_lambda": _k((float, int), 1.0, minimum=0),
    "algorithm.outer": _k(str, "trpo", ("trpo", "ppo")),
    "algorithm.max_kl": _k((float, int), 0.01, minimum=1e-9),
    "algorithm.ppo_clip": _k((float, int), 0.2, minimum=1e-9),
    "algorithm.ppo_epochs": _k(int, 5, minimum=1),
    "algorithm.ppo_lr": _k((float, int), 3e-4, minimum=1e-12),
    "train.steps": _k(int, 1000, minimum=1),
    "train.meta_batch": _k(int, 32, minimum=1),
    "train.optimizer": _k(str, "adam", ("adam", "sgd")),
    "train.lr": _k((float, int), 1e-3, minimum=0),
    "train.schedule": _k(str, "constant", ("constant", "cosine", "linear", "step")),
    "train.lr_decay_every": _k(int, 0, minimum=0),
    "train.lr_decay": _k((float, int), 0.5, minimum=0),
    "train.grad_clip": _k((float, int), None, minimum=0),
    "train.val_every": _k(int, 500, minimum=1),
    "train.checkpoint_every": _k(int, None, minimum=1),
    "train.val_episodes": _k(int, 200, minimum=1),
    "train.log_every": _k(int, 10, minimum=1),
    "train.skip_nonfinite": _k(bool, False),
    "train.max_minutes": _k((float, int), None, minimum=0.001),
    "train.augment": _k(str, "none", ("none", *AUGMENTATIONS)),
    "train.tensorboard": _k(bool, False),
    "test.episodes": _k(int, 600, minimum=1),
    "test.inner_steps": _k(int, None, minimum=0),
    "test.seed": _k(int, 2024),
}
DEFAULT_PRESET = "protonet-glyphs-5w1s"
SECTIONS = sorted({key.split(".")[0] for key in SCHEMA if "." in key})


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and (prefix + key) in SECTIONS:
            flat.update(flatten(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *sections, leaf = key.split(".")
        target = nested
        for depth, section in enumerate(sections):
            target = target.setdefault(section, {})
            if not isinstance(target, dict):
                name = ".".join(sections[: depth + 1])
                raise ConfigError(f"{name} is given both as a value and as a section (with {key}): give it once")
        if isinstance(target.get(leaf), dict):
            raise ConfigError(f"{key} is given both as a value and as a section: give it once")
        target[leaf] = value
    return nested


def _unknown(key: str) -> ConfigError:
    hint = did_you_mean(key, [*SCHEMA, *SECTIONS]) or "; `fastadapt train --help` lists the keys"
    return ConfigError(f"unknown config key {key!r}{hint}")


def _check(key: str, value: Any) -> Any:
    spec = SCHEMA[key]
    if value is None:
        if spec.nullable:
            return None
        raise ConfigError(f"{key} cannot be empty (null)")
    if float in spec.types and isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if float in spec.types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if not isinstance(value, spec.types) or (isinstance(value, bool) and bool not in spec.types):
        wanted = " or ".join(t.__name__ for t in spec.types)
        raise ConfigError(f"{key} must be {wanted}, got {value!r} ({type(value).__name__})")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{key} must be one of {list(spec.choices)}, got {value!r}")
    if spec.minimum is not None and value < spec.minimum:
        raise ConfigError(f"{key} must be at least {spec.minimum}, got {value!r}")
    return value


def resolve(config: dict[str, Any]) -> dict[str, Any]:
    """Validate a (partial) nested config and fill in every default; errors name the key."""
    flat = flatten(config)
    for key in flat:
        if key in SECTIONS:
            raise ConfigError(f"{key} must be a section of key: value pairs (e.g. {key}: {{name: ...}}), got {flat[key]!r}")
        if key not in SCHEMA:
            raise _unknown(key)
    for section in TARGET_SECTIONS:
        if flat.get(f"{section}.target") is not None:
            flat.setdefault(f"{section}.name", CUSTOM)
    resolved = {
        key: _check(key, flat[key]) if key in flat else copy.deepcopy(spec.default) for key, spec in SCHEMA.items()
    }
    _check_targets(resolved)
    if resolved["dataset.name"] == "sinusoid" and resolved["algorithm.name"] in EMBEDDING_ALGORITHMS:
        raise ConfigError(
            f"{resolved['algorithm.name']} classifies; the sinusoid dataset is regression: use a gradient-based algorithm"
        )
    if resolved["dataset.name"] == "sinusoid" and resolved["model.name"] not in ("mlp", CUSTOM):
        raise ConfigError("the sinusoid dataset needs model.name=mlp (or your own model.target)")
    rl_data, rl_algorithm = resolved["dataset.name"] in FAMILIES, resolved["algorithm.name"] == "mamlrl"
    if rl_data != rl_algorithm or rl_data != (resolved["model.name"] == "policy"):
        raise ConfigError(
            "reinforcement learning goes together: an RL task family (dataset.name one of "
            f"{sorted(FAMILIES)}), algorithm.name=mamlrl and model.name=policy"
        )
    if rl_algorithm and (resolved["train.optimizer"] != "sgd" or resolved["train.lr"] != 1.0 or resolved["train.schedule"] != "constant"):
        raise ConfigError("mamlrl computes its own TRPO/PPO step, applied as is: set train.optimizer=sgd, train.lr=1, train.schedule=constant")
    fewest_steps = 0 if resolved["algorithm.name"] == "maml" else 1  # maml with 0 steps: the paper's pretrained baseline
    if resolved["algorithm.name"] in GRADIENT_ALGORITHMS and resolved["algorithm.inner_steps"] < fewest_steps:
        raise ConfigError(f"{resolved['algorithm.name']} needs algorithm.inner_steps >= 1")
    images = resolved["dataset.name"] not in ("sinusoid", *FAMILIES, CUSTOM)
    if images and resolved["model.name"] not in ("conv4", "resnet12", CUSTOM):
        raise ConfigError(
            f"image dataset {resolved['dataset.name']} needs model.name=conv4 or resnet12 (or your own model.target)"
        )
    if resolved["algorithm.name"] == "relationnet" and resolved["model.name"] not in ("conv4", CUSTOM):
        raise ConfigError("relationnet compares feature maps and is built on model.name=conv4 (or your model.target)")
    for section, kinds in APPLICABLE.items():
        kind = resolved[f"{section}.name"]
        allowed = {"name", *COMMON_KEYS[section], *kinds[kind]}
        for key in [k for k in resolved if k.startswith(section + ".")]:
            leaf = key.partition(".")[2]
            if leaf in allowed:
                continue
            if key in flat and flat[key] != SCHEMA[key].default:
                raise ConfigError(f"{key} does not apply to {section}.name={kind} (its keys: {sorted(kinds[kind]) or 'none'})")
            del resolved[key]
    if not all(isinstance(w, int) and w > 0 for w in resolved.get("model.layers", [1])):
        raise ConfigError(f"model.layers must be a list of positive integers, got {resolved['model.layers']!r}")
    fractions = resolved.get("dataset.split_fractions", [1, 1, 1])
    if len(fractions) != 3 or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in fractions):
        raise ConfigError(f"dataset.split_fractions must be three positive numbers (train, val, test), got {fractions!r}")
    if "dataset.image_size" in resolved and resolved["dataset.image_size"] is None:
        resolved["dataset.image_size"] = BENCHMARKS[resolved["dataset.name"]].release.image_size if resolved["dataset.name"] in BENCHMARKS else 28
    if resolved["dataset.name"] == "imagefolder" and not resolved["dataset.path"]:
        raise ConfigError("dataset.name=imagefolder needs dataset.path: the folder (or archive) of class folders")
    return unflatten(resolved)


def _check_targets(resolved: dict[str, Any]) -> None:
    """The rules of your own model and dataset: a well-formed target exactly where the name is custom, kwargs named
    by strings, your own model for your own data, and none of the built-in image transforms on that data."""
    for section in TARGET_SECTIONS:
        name, target, kwargs = (resolved[f"{section}.{leaf}"] for leaf in ("name", "target", "kwargs"))
        if name == CUSTOM and target is None:
            raise ConfigError(f"{section}.name={CUSTOM} needs {section}.target: your factory, as module:function")
        if target is not None:
            split_target(target, f"{section}.target")
        if not all(isinstance(arg, str) and arg.isidentifier() for arg in kwargs):
            raise ConfigError(f"{section}.kwargs must map argument names to values, got {kwargs!r}")
    if "split" in resolved["dataset.kwargs"]:
        raise ConfigError("dataset.kwargs cannot set split: the factory is called with split='train', 'val' or 'test'")
    if resolved["dataset.name"] != CUSTOM:
        return
    if resolved["model.name"] != CUSTOM:
        raise ConfigError(
            "your own dataset.target needs your own model.target: the built-in backbones are sized for the built-in "
            "image datasets (name one as a target with its sizes in model.kwargs, e.g. model.target=fastadapt.nn:MLP)"
        )
    for key, off in (("train.augment", "none"), ("algorithm.distortions", False)):
        if resolved[key] != off:
            raise ConfigError(f"{key} transforms images of the built-in datasets, not dataset.target data: transform "
                              "it in your dataset (its factory is told the split)")


def resolve_stored(config: dict[str, Any]) -> dict[str, Any]:
    """``resolve`` for a config stored with a run: earlier versions wrote every key, so keys that do
    not apply to the run's dataset, model or algorithm are dropped instead of refused."""
    flat = flatten(config)
    for section, kinds in APPLICABLE.items():
        kind = flat.get(f"{section}.name")
        if kind in kinds:
            allowed = {"name", *COMMON_KEYS[section], *kinds[kind]}
            flat = {k: v for k, v in flat.items() if not (k.startswith(section + ".") and k.partition(".")[2] not in allowed)}
    return resolve(unflatten(flat))


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["train.steps=100", "algorithm.first_order=true"]`` -> a nested dict (values parsed as YAML)."""
    flat: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.steps=100)")
        if key not in SCHEMA:
            raise _unknown(key)
        try:
            flat[key] = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: cannot parse the value {text!r}") from None
    return unflatten(flat)


def _is_own(flat: dict[str, Any], section: str) -> bool | None:
    """Whether a (partial) flat config makes ``section`` your own (a target), a built-in (a name), or says nothing."""
    if flat.get(f"{section}.target") is not None:
        return True
    if f"{section}.name" in flat:
        return flat[f"{section}.name"] == CUSTOM
    return False if f"{section}.target" in flat else None


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` laid over ``base`` (flat keys replace). A model or dataset section that ``update`` turns from a
    built-in into your own (a ``target``), or back, starts afresh: the keys of one mean nothing to the other."""
    flat_base, flat_update = flatten(base), flatten(update)
    for section in TARGET_SECTIONS:
        own = _is_own(flat_update, section)
        if own is not None and own != bool(_is_own(flat_base, section)):
            flat_base = {key: value for key, value in flat_base.items() if not key.startswith(section + ".")}
    return unflatten({**flat_base, **flat_update})


def _preset_files() -> dict[str, Any]:
    folder = importlib.resources.files("fastadapt") / "presets"
    return {item.name[: -len(".yaml")]: item for item in folder.iterdir() if item.name.endswith(".yaml")}


def preset_names() -> list[str]:
    return sorted(_preset_files())


def _parse_yaml(text: str, source: str) -> dict[str, Any]:
    """A YAML mapping, or ``ConfigError`` naming the file, line and problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise ConfigError(f"{source} is not valid YAML{where}: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must hold config keys (key: value lines), not a {type(raw).__name__}")
    return raw


def _extended(raw: dict[str, Any], source: str, seen: tuple[str, ...], load: Any) -> dict[str, Any]:
    """``raw`` laid over what its ``extends`` names (a preset, or with ``load`` a YAML file)."""
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"{source}: extends must name a preset or a .yaml file, got {parent!r}")
    if parent in seen:
        raise ConfigError(f"{source}: extends {parent!r} goes round in a circle ({' -> '.join((*seen, parent))})")
    return merge(load(parent, (*seen, parent)), raw)


def load_preset(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A preset as a nested dict; ``extends: other`` inherits another preset's keys."""
    files = _preset_files()
    if name not in files:
        hint = did_you_mean(name, list(files))
        raise ConfigError(f"unknown preset {name!r}{hint} (`fastadapt presets` lists them)")
    raw = _parse_yaml(files[name].read_text(), f"preset {name}")
    config = _extended(raw, f"preset {name}", seen or (name,), load_preset)
    config["name"] = name
    return config


def load_config_file(path: str | os.PathLike[str], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config file of your own: the keys of a preset, with ``extends:`` naming a preset (or another
    ``.yaml`` file, relative to this one) to start from. Its ``name`` defaults to the file's stem."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"there is no config file {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (YAML) file") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None

    def load(parent: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if parent.endswith((".yaml", ".yml")):
            return load_config_file(path.parent / parent, chain)
        return load_preset(parent)

    raw = _parse_yaml(text, str(path))
    name = raw.get("name", path.stem)
    config = _extended(raw, str(path), seen or (str(path),), load)
    config["name"] = name
    return config


def build_config(preset: str | None, overrides: Iterable[str] = (), config_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The resolved config of a preset (default: ``DEFAULT_PRESET``) or of a config file, with
    command-line ``key=value`` overrides laid over it."""
    if preset is not None and config_file is not None:
        raise ConfigError("give a preset or a config file, not both (a config file can say `extends: PRESET`)")
    base = load_config_file(config_file) if config_file is not None else load_preset(preset or DEFAULT_PRESET)
    return resolve(merge(base, parse_overrides(overrides)))


def device_of(config: dict[str, Any]) -> torch.device:
    name = config["device"]
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a torch device (use auto, cpu, cuda or cuda:N)") from None


def preprocessing_of(config: dict[str, Any]) -> Preprocessing | None:
    """How the run's images were made from files (``None`` for non-image data)."""
    data = config["dataset"]
    if data["name"] == "omniglot":
        return omniglot_preprocessing(data["image_size"])
    if data["name"] == "glyphs":
        return glyphs_preprocessing(data["image_size"])
    if data["name"] == "imagefolder":
        return Preprocessing(data["image_size"], data["channels"], data["invert"])
    if data["name"] in BENCHMARKS:
        return Preprocessing(data["image_size"], BENCHMARKS[data["name"]].release.channels)
    return None


def _dataset(config: dict[str, Any], split: str) -> ClassDataset | Dataset:
    """The classes of a split: a built-in image dataset, or what your ``dataset.target`` returns, as it is."""
    data = config["dataset"]
    if data["name"] == CUSTOM:
        wanted = "a fastadapt ClassDataset or a torch.utils.data.Dataset of (x, label) pairs"
        kwargs = {"split": split, **data["kwargs"]}
        return call_target(data["target"], "dataset.target", kwargs, (ClassDataset, Dataset), wanted)
    if data["name"] == "omniglot":
        return Omniglot(
            data["data_dir"], split=split, scheme=data["scheme"], image_size=data["image_size"],
            rotations=data["rotations"], download=data["download"],
        )
    if data["name"] == "imagefolder":
        return ImageFolder(
            data["path"], split=split, image_size=data["image_size"], channels=data["channels"], invert=data["invert"],
            split_fractions=data["split_fractions"], split_seed=data["split_seed"], rotations=data["rotations"],
        )
    if data["name"] in BENCHMARKS:
        return BENCHMARKS[data["name"]](data["data_dir"], split=split, image_size=data["image_size"], download=data["download"])
    return Glyphs(data["data_dir"], split=split, image_size=data["image_size"], rotations=data["rotations"])


def build_tasks(config: dict[str, Any], split: str, seed: int) -> TaskDistribution:
    """The task distribution of a split: ``train`` uses ``train_task`` sizes where given."""
    if config["dataset"]["name"] in FAMILIES:
        return RLTasks(family(config["dataset"]["name"]), seed=seed)  # splits differ by seed: goals are continuous
    task = dict(config["task"])
    if split == "train":
        task.update({k: v for k, v in config["train_task"].items() if v is not None})
    if config["dataset"]["name"] == "sinusoid":
        return SinusoidTasks(shots=task["shots"], queries=task["queries"], seed=seed)
    augment = AUGMENTATIONS.get(config["train"]["augment"]) if split == "train" else None
    dataset = _dataset(config, split)
    return FewShotTasks(dataset, task["ways"], task["shots"], task["queries"], seed=seed, augment=augment)


def has_validation(config: dict[str, Any]) -> bool:
    return not (config["dataset"]["name"] == "omniglot" and config["dataset"]["scheme"] == "lake")


def head_ways(config: dict[str, Any]) -> int | None:
    """How many classes the model's output layer can tell apart (``None``: any number, as in ProtoNet)."""
    if config["algorithm"]["name"] in (*EMBEDDING_ALGORITHMS, "mamlrl") or config["dataset"]["name"] == "sinusoid":
        return None
    return max(config["task"]["ways"], config["train_task"]["ways"] or 0)


def _backbone(config: dict[str, Any], out_features: int | None) -> torch.nn.Module:
    """The module the algorithm wraps: what your ``model.target`` returns, or a built-in backbone sized for the data."""
    model_cfg, name = config["model"], config["algorithm"]["name"]
    if model_cfg["name"] == CUSTOM:
        kwargs = model_cfg["kwargs"]
        return call_target(model_cfg["target"], "model.target", kwargs, torch.nn.Module, "a torch.nn.Module")
    if model_cfg["name"] == "mlp":
        return MLP(1, out_features, hidden=model_cfg["layers"])
    preprocessing = preprocessing_of(config)
    if model_cfg["name"] == "resnet12":
        model: torch.nn.Module = ResNet12(preprocessing.channels, out_features, image_size=preprocessing.image_size)
    else:
        maps = {"downsample_blocks": 2, "feature_maps": True} if name == "relationnet" else {}
        model = Conv4(preprocessing.channels, out_features, model_cfg["hidden"], model_cfg["pool"], preprocessing.image_size, **maps)
    if model_cfg["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    return model


def build_learner(config: dict[str, Any]) -> MetaLearner:
    """The algorithm and its backbone, sized for the config's data and tasks."""
    algorithm = config["algorithm"]
    name = algorithm["name"]
    options = {key: algorithm[key] for key in ALGORITHM_KEYS[name]}
    if name == "mamlrl":
        tasks = family(config["dataset"]["name"])
        policy = GaussianPolicy(tasks.obs_dim, tasks.act_dim, hidden=config["model"]["layers"])
        return MAMLRL(policy, tasks, horizon=config["dataset"]["horizon"], **options)
    if name in EMBEDDING_ALGORITHMS:
        if name == "finetune" and options["classes"] is None:
            raise ConfigError("finetune needs algorithm.classes, the number of meta-training classes (set when a run starts)")
        return ALGORITHMS[name](_backbone(config, None), vmap=algorithm["vmap"], **options)
    loss = "mse" if config["dataset"]["name"] == "sinusoid" else "cross_entropy"
    return ALGORITHMS[name](_backbone(config, head_ways(config) or 1), loss=loss, vmap=algorithm["vmap"], **options)


def check_model_fits(
    config: dict[str, Any], learner: MetaLearner, tasks: TaskDistribution, device: torch.device
) -> None:
    """Run your own model (``model.target``) once on a support set of ``tasks``, so that a model that does not fit
    the data (its input shape, too few logits) is one clear error before training, not a traceback inside it."""
    if config["model"]["name"] != CUSTOM:
        return
    spec, ways = config["model"]["target"], head_ways(config)
    module = learner.encoder if config["algorithm"]["name"] in EMBEDDING_ALGORITHMS else learner.model
    inputs = next(tasks.episodes(1)).support_x[0].to(device)
    was_training = module.training
    module.eval()  # no dropout draws; batch norm on batch statistics, as always (fastadapt.nn.call)
    try:
        with torch.no_grad():
            outputs = call(module, inputs)
    except Exception as error:  # the user's forward failed on the data: its message, in one line
        raise ConfigError(f"model.target {spec!r} does not fit the data: on inputs of shape {tuple(inputs.shape)} it "
                          f"raised {one_line(error)}") from None
    finally:
        module.train(was_training)
    if ways is not None and not (isinstance(outputs, torch.Tensor) and outputs.dim() == 2 and outputs.shape[1] >= ways):
        shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
        raise ConfigError(f"model.target {spec!r} outputs {shape} for inputs of shape {tuple(inputs.shape)}: "
                          f"{config['algorithm']['name']} needs {ways} logits per example, one per class of its tasks "
                          "(give the width in model.kwargs)")


def optimizer_for(config: dict[str, Any], learner: MetaLearner) -> torch.optim.Optimizer:
    train = config["train"]
    if train["optimizer"] == "sgd":
        return torch.optim.SGD(learner.parameters(), lr=train["lr"])
    return torch.optim.Adam(learner.parameters(), lr=train["lr"])
