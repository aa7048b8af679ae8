"""``RunConfig``: a whole run's configuration, typed. Its run-level sections (``task``, ``train_task``, ``train``,
``test``) are declared here; ``dataset``, ``model`` and ``algorithm`` are the registered components the sections
name (``fastadapt.components``). ``resolve`` makes one from a nested dict and checks the rules across sections."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fastadapt.augment import AUGMENTATIONS
from fastadapt.components import (
    KINDS,
    AlgorithmConfig,
    Component,
    DatasetConfig,
    ModelConfig,
    lookup,
    option,
    registered,
)
from fastadapt.config.sections import parse_section, section_dict, unknown_key
from fastadapt.errors import ConfigError
from fastadapt.nn.functional import Statistics
from fastadapt.training.schedule import Schedule
from fastadapt.training.settings import TrainConfig
from fastadapt.training.validation import Selection

CUSTOM = "custom"  # the `name` of a model or dataset that your own `target` builds
DEFAULT_NAMES = {"dataset": "glyphs", "model": "conv4", "algorithm": "maml"}
SPLITS = ("train", "val", "test", "trainval")
TRAINING_SPLITS = ("train", "trainval")  # the splits a model is trained on: training task sizes and augmentation


@dataclass
class Header:
    """The run-level keys: what the run is called, its seed and where it runs."""

    name: str = "custom"
    description: str = ""
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False


@dataclass
class TaskSizes:
    """The tasks' sizes: ``ways`` classes, ``shots`` support and ``queries`` query examples of each."""

    ways: int = option(5, minimum=2)
    shots: int = option(1, minimum=1)
    queries: int = option(15, minimum=1)


@dataclass
class TrainTaskSizes:
    """The training tasks' sizes where they differ from ``task`` (``None``: as ``task``)."""

    ways: int | None = option(None, minimum=2)
    shots: int | None = option(None, minimum=1)
    queries: int | None = option(None, minimum=1)


@dataclass
class TrainSection:
    """Meta-training (``fastadapt.training.TrainConfig``), its optimizer and the augmentation of its tasks.

    ``retrain_on_trainval`` is Snell et al.'s procedure: after training with early stopping (``patience``), train a
    fresh model on the training and validation classes together for the best step plus ``patience`` updates, and
    test that one. ``select`` is what makes a validation the best (``metric`` or ``loss``: Snell et al. stop on the
    validation loss). ``keep_best`` keeps the checkpoints of that many best validations (for ``test.ensemble``)."""

    steps: int = option(1000, minimum=1)
    meta_batch: int = option(32, minimum=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = option(1e-3, minimum=0)
    schedule: Schedule = "constant"
    lr_decay_every: int = option(0, minimum=0)
    lr_decay: float = option(0.5, minimum=0)
    grad_clip: float | None = option(None, minimum=0)
    val_every: int = option(500, minimum=1)
    checkpoint_every: int | None = option(None, minimum=1)
    val_episodes: int = option(200, minimum=1)
    log_every: int = option(10, minimum=1)
    skip_nonfinite: bool = False
    max_minutes: float | None = option(None, minimum=0.001)
    augment: str = "none"
    tensorboard: bool = False
    patience: int | None = option(None, minimum=1)
    retrain_on_trainval: bool = False
    select: Selection = "metric"
    keep_best: int = option(1, minimum=1)

    def settings(self, **runtime: Any) -> TrainConfig:
        """The trainer's settings (``runtime`` adds those of this process, e.g. ``progress``)."""
        return TrainConfig.from_section(dataclasses.asdict(self), **runtime)


@dataclass
class TestSection:
    """Meta-testing: ``episodes`` fixed tasks drawn with ``seed``, ``inner_steps`` adaptation steps (``None``: the
    algorithm's own), and which statistics batch norm uses for the queries (``query``: transductive, the
    convention of MAML's code; ``support``, ``support_and_query``: non-transductive; ``population``: fixed statistics
    recorded on training tasks, as batch norm in eval mode). ``checkpoint`` is the state tested: ``best`` on
    validation, or ``last``, the state training ended in (what the MAML and Reptile code test); a run retrained on
    train + val tests the retrained model. ``ensemble`` tests the mean output of the checkpoints of that many best
    validations (MAML++'s top-5 ensemble; 1: one checkpoint)."""

    episodes: int = option(600, minimum=1)
    inner_steps: int | None = option(None, minimum=0)
    seed: int = 2024
    statistics: Statistics = "query"
    checkpoint: Literal["best", "last"] = "best"
    ensemble: int = option(1, minimum=1)


RUN_SECTIONS: dict[str, type] = {
    "task": TaskSizes, "train_task": TrainTaskSizes, "train": TrainSection, "test": TestSection,
}
SECTIONS = ("dataset", "task", "train_task", "model", "algorithm", "train", "test")


@dataclass
class RunConfig:
    """A resolved run config: every key typed and checked, every default filled in."""

    dataset: DatasetConfig
    model: ModelConfig
    algorithm: AlgorithmConfig
    name: str = "custom"
    description: str = ""
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    task: TaskSizes = field(default_factory=TaskSizes)
    train_task: TrainTaskSizes = field(default_factory=TrainTaskSizes)
    train: TrainSection = field(default_factory=TrainSection)
    test: TestSection = field(default_factory=TestSection)

    def to_dict(self) -> dict[str, Any]:
        """The nested dict of ``config.yaml``, which ``resolve`` reads back to an equal ``RunConfig``."""
        out: dict[str, Any] = {key.name: getattr(self, key.name) for key in dataclasses.fields(Header)}
        for name in SECTIONS:
            part = getattr(self, name)
            out[name] = part.to_dict() if isinstance(part, Component) else section_dict(part)
        return out

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def sizes(self, split: str) -> TaskSizes:
        """The task sizes of ``split``: the training split's ``train_task`` laid over ``task``."""
        if split not in TRAINING_SPLITS:
            return self.task
        given = {k: v for k, v in section_dict(self.train_task).items() if v is not None}
        return dataclasses.replace(self.task, **given)

    def seed_of(self, split: str) -> int:
        """The one rule of the seeds of a run's task streams: training ``seed``, validation ``seed + 1``, testing
        ``test.seed`` (fixed across runs, so that every run of a preset is tested on the same episodes)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return {"train": self.seed, "trainval": self.seed, "val": self.seed + 1, "test": self.test.seed}[split]

    def head_ways(self) -> int | None:
        """How many logits the model's output layer gives (``None``: the model outputs features or actions)."""
        if not self.algorithm.classifier or self.dataset.problem == "rl":
            return None
        if self.dataset.problem == "regression":
            return 1
        return max(self.task.ways, self.train_task.ways or 0)


def resolve(config: Mapping[str, Any] | RunConfig, *, lenient: bool = False) -> RunConfig:
    """Check a (partial) nested config and fill in every default. ``lenient`` is for configs stored by earlier
    versions, which wrote every key of every component: keys that do not apply are dropped, not refused."""
    if isinstance(config, RunConfig):
        return config
    raw = dict(config)
    header_keys = [key.name for key in dataclasses.fields(Header)]
    for key, value in raw.items():
        if key in SECTIONS and not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a section of key: value pairs (e.g. {key}: {{name: ...}}), got {value!r}")
        if key not in SECTIONS and key not in header_keys and not lenient:
            raise unknown_key(Header, "", str(key), [*header_keys, *SECTIONS])
    header = parse_section(Header, {k: v for k, v in raw.items() if k in header_keys}, "", lenient=lenient)
    parts = {kind: component(kind, raw.get(kind) or {}, lenient) for kind in KINDS}
    sections: dict[str, Any] = {
        name: parse_section(cls, raw.get(name) or {}, name, lenient=lenient) for name, cls in RUN_SECTIONS.items()
    }
    run = RunConfig(**section_dict(header), **parts, **sections)
    check_run(run)
    return run


def component_name(kind: str, section: Mapping[str, Any]) -> str | None:
    """The component a section names: its ``name``, else ``custom`` where it gives a ``target``, else ``None``."""
    if "name" in section:
        return section["name"]
    return CUSTOM if section.get("target") is not None else None


def component(kind: str, section: Mapping[str, Any], lenient: bool = False) -> Any:
    """The typed config of the component a section names."""
    name = component_name(kind, section)
    cls = lookup(kind, DEFAULT_NAMES[kind] if name is None else name)  # a given "" or 0 is refused, not defaulted
    return parse_section(cls, {k: v for k, v in section.items() if k != "name"}, kind, lenient=lenient)


def check_run(run: RunConfig) -> None:
    """The rules across sections: the algorithm solves the dataset's problem, the model reads its inputs, the
    training augmentation exists and applies; then each component's own rules."""
    algorithm, data, model = run.algorithm, run.dataset, run.model
    if data.problem not in algorithm.problems:
        fits = sorted(name for name, cls in registered("algorithm").items() if data.problem in cls.problems)  # type: ignore[attr-defined]
        solves = "solves " + " and ".join(algorithm.problems)
        verb = "classifies" if algorithm.problems == ("classification",) else solves
        raise ConfigError(f"{algorithm.name} {verb}; the {data.name} dataset is {data.problem}: use algorithm.name "
                          f"{' or '.join(fits)}")
    if model.inputs is not None and model.inputs != data.inputs:
        raise ConfigError(_model_mismatch(data))
    if run.train.augment not in ("none", *AUGMENTATIONS):
        raise ConfigError(f"train.augment must be one of {['none', *AUGMENTATIONS]}, got {run.train.augment!r}")
    if run.train.retrain_on_trainval and (run.train.patience is None or not data.has_validation()):
        raise ConfigError("train.retrain_on_trainval retrains for the best step plus train.patience: it needs "
                          "train.patience and a dataset with a validation split")
    if run.test.ensemble > 1:
        check_ensemble(run)
    if run.test.statistics != "query" and data.problem == "rl":
        raise ConfigError(f"test.statistics={run.test.statistics} is a batch-norm protocol of few-shot learning; "
                          "meta-RL policies are tested on their own rollouts: set test.statistics=query")
    if run.train.augment != "none" and data.inputs != "images":
        raise ConfigError(f"train.augment transforms images of the built-in datasets, not {data.name} data: transform "
                          "it in your dataset (its factory is told the split)")
    for part in (data, model, algorithm):
        part.check(run)


def check_ensemble(run: RunConfig) -> None:
    """A top-k ensemble averages checkpoints of the best validations of a supervised run that kept them."""
    k = run.test.ensemble
    if run.test.checkpoint != "best":
        raise ConfigError(f"test.ensemble={k} averages the checkpoints of the best validations, not the last state: "
                          "set test.checkpoint=best or test.ensemble=1")
    if run.train.keep_best < k:
        raise ConfigError(f"test.ensemble={k} averages the checkpoints of the {k} best validations: set "
                          f"train.keep_best >= {k} (it is {run.train.keep_best})")
    if not run.dataset.has_validation() or run.train.retrain_on_trainval:
        raise ConfigError("test.ensemble averages checkpoints chosen on validation: it needs a dataset with a "
                          "validation split and no train.retrain_on_trainval")
    if run.dataset.problem == "rl":
        raise ConfigError("test.ensemble averages the outputs of few-shot models; meta-RL policies are tested alone: "
                          "set test.ensemble=1")


def _model_mismatch(data: DatasetConfig) -> str:
    fits = sorted(name for name, cls in registered("model").items() if cls.inputs == data.inputs)  # type: ignore[attr-defined]
    if not fits:
        return ("your own dataset.target needs your own model.target: the built-in backbones are sized for the "
                "built-in datasets (name one as a target with its sizes in model.kwargs, e.g. "
                "model.target=fastadapt.nn:MLP)")
    return f"the {data.name} dataset needs model.name={' or '.join(fits)} (or your own model.target)"
