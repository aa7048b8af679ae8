"""Configurable components: every algorithm, model and dataset declares its configuration as a dataclass
registered under a name beside its class, with its keys, defaults, checks and a ``build`` method.

A config section (``algorithm:``, ``model:``, ``dataset:``) names its component (``name: maml``); the
rest of the section are the fields of that component's dataclass, typed and checked by OmegaConf
(``fastadapt.config.sections``). Adding an algorithm is one file: the class, and its config decorated
with ``@register("algorithm", "myname")`` (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from torch import nn

from fastadapt.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from fastadapt.datasets.images import Preprocessing

KINDS = ("algorithm", "model", "dataset")
PROBLEMS = ("classification", "regression", "rl")
_REGISTRY: dict[str, dict[str, type[Component]]] = {kind: {} for kind in KINDS}
C = TypeVar("C", bound="type[Component]")


def option(default: Any, *, minimum: float | None = None) -> Any:
    """A config field: its default and, for numbers, the least value it may take (checked on every load)."""
    metadata = {"minimum": minimum} if minimum is not None else {}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class Component:
    """The base of every component's config: ``name`` and ``kind`` are set by ``register``."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    shared_keys: ClassVar[tuple[str, ...]] = ()  # keys every component of the kind has (not listed as its own)

    def validate(self) -> None:
        """Rules within the section (e.g. a list of positive widths); raise ``ConfigError``."""

    def check(self, run: Run) -> None:
        """Rules across sections (e.g. an algorithm that needs a certain model); raise ``ConfigError``."""

    def to_dict(self) -> dict[str, Any]:
        """The section as stored in a run's ``config.yaml``: its name, then its keys."""
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclass
class AlgorithmConfig(Component):
    """An algorithm: which problems it solves, whether its model ends in a classifier, and ``build``."""

    problems: ClassVar[tuple[str, ...]] = ("classification",)
    classifier: ClassVar[bool] = False  # the model outputs one logit per way (gradient-based methods), else features
    backbone_options: ClassVar[dict[str, Any]] = {}  # what the built-in Conv4 must be for this algorithm
    optimized: ClassVar[bool] = True  # False: the learner applies its own outer step (no meta-optimizer)
    learner: ClassVar[Callable[..., nn.Module]]  # what ``build`` makes: called with the model and ``options()``
    shared_keys = ("vmap",)
    vmap: bool | None = option(None)

    def options(self) -> dict[str, Any]:
        """The learner's keyword arguments: the section's keys."""
        return dataclasses.asdict(self)

    def build(self, model: nn.Module, run: Run) -> nn.Module:
        return self.learner(model, **self.options())

    def settle(self, train_tasks: Any) -> AlgorithmConfig:
        """This config with what depends on the training data filled in (stored with the run)."""
        return self


@dataclass
class ModelConfig(Component):
    """A model: which data it reads (``inputs``; ``None`` for any) and ``build`` sized for the data."""

    inputs: ClassVar[str | None] = "images"

    def build(self, data: DatasetConfig, out_features: int | None, options: dict[str, Any]) -> nn.Module:
        raise NotImplementedError


@dataclass
class DatasetConfig(Component):
    """A dataset (``ClassDatasetConfig``) or a task family (``TaskFamilyConfig``): the problem its tasks pose and the
    inputs they hold."""

    problem: ClassVar[str] = "classification"
    inputs: ClassVar[str] = "images"

    def preprocessing(self) -> Preprocessing | None:
        """How the images were made from files (``None`` for data that are not images)."""
        return None

    def has_validation(self) -> bool:
        return True


@dataclass
class ClassDatasetConfig(DatasetConfig):
    """A dataset of labelled classes (``classes(split)``), whose tasks ``FewShotTasks`` draws with the
    ``task_options()`` (e.g. Omniglot's per-task rotations)."""

    def classes(self, split: str) -> Any:
        raise NotImplementedError

    def task_options(self) -> dict[str, Any]:
        return {}


@dataclass
class TaskFamilyConfig(DatasetConfig):
    """A family of tasks that are not drawn from classes (regression, RL): it makes its own task distribution."""

    def tasks(self, split: str, ways: int, shots: int, queries: int, seed: int, augment: Any) -> Any:
        raise NotImplementedError


class Run(Protocol):
    """What a component's ``check`` and ``build`` see of the run (``fastadapt.config.RunConfig`` is one): the three
    components, and the run-level sections."""

    dataset: DatasetConfig
    model: ModelConfig
    algorithm: AlgorithmConfig
    task: Any
    train: Any
    test: Any


def register(kind: str, name: str) -> Callable[[C], C]:
    """Class decorator: register a component config under ``kind`` (algorithm, model, dataset) and ``name``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def decorate(cls: C) -> C:
        known = _REGISTRY[kind].get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"{kind} {name!r} is already registered by {known.__module__}.{known.__qualname__}")
        cls.name, cls.kind = name, kind
        _REGISTRY[kind][name] = cls
        return cls

    return decorate


def registered(kind: str) -> dict[str, type[Component]]:
    """The components of ``kind`` by name (built-ins register when ``fastadapt.config`` is imported)."""
    return dict(_REGISTRY[kind])


def lookup(kind: str, name: Any) -> type[Component]:
    """The config class registered as ``name``, or one line naming the known ones."""
    known = _REGISTRY[kind]
    if not isinstance(name, str) or name not in known:
        hint = did_you_mean(str(name), list(known)) if isinstance(name, str) else ""
        raise ConfigError(f"{kind}.name must be one of {sorted(known)}, got {name!r}{hint}")
    return known[name]
