"""Your own model or dataset named in a config: a ``target`` is ``module:attribute``, a factory to import and call.

This is the convention of Hydra's ``_target_`` and torchtune's ``_component_``, written as Python entry points
are (``pkg.module:factory``). The module is looked up as ``python -m`` would: the current folder first, then
``sys.path``, so ``fastadapt train --config my.yaml`` run in the folder that holds ``mynets.py`` finds
``mynets:make_model``. Every way a target can fail is a one-line ``ConfigError`` naming the key and the target.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from fastadapt.components import ClassDatasetConfig, DatasetConfig, ModelConfig, register
from fastadapt.datasets.base import ClassDataset
from fastadapt.errors import ConfigError, did_you_mean


def split_target(spec: str, key: str = "target") -> tuple[str, str]:
    """``"pkg.module:factory"`` -> ``("pkg.module", "factory")``, checked before any import so a typo fails first."""
    module, sep, attribute = spec.partition(":")
    if sep and all(part.isidentifier() for part in (*module.split("."), *attribute.split("."))):
        return module, attribute
    head, _, tail = spec.rpartition(".")
    hint = f"; did you mean {head + ':' + tail!r}?" if not sep and head and tail else ""
    raise ConfigError(
        f"{key} must be module:attribute, e.g. mynets:make_model (the module as you import it), got {spec!r}{hint}"
    )


def one_line(error: BaseException) -> str:
    """An exception as ``Type: first line of its message``: what a user needs to find it in their own code."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _import_module(name: str, key: str, spec: str) -> Any:
    """Import the module of a target from the current folder or ``sys.path``, as ``python -m`` would."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # the console script's sys.path starts at its own folder, not the user's
    importlib.invalidate_caches()  # a module written since start-up (or since the last import) is found
    try:
        return importlib.import_module(name)
    except Exception as error:  # not there, or the user's module raised while it was imported
        missing = error.name if isinstance(error, ModuleNotFoundError) else None
        if missing is not None and (name + ".").startswith(missing + "."):  # the module itself or its package
            raise ConfigError(
                f"{key} {spec!r}: there is no module {missing!r} to import: install it, add its folder to PYTHONPATH, "
                f"or run fastadapt in the folder that holds it (now {os.getcwd()})"
            ) from None
        raise ConfigError(f"{key} {spec!r}: importing {name} failed: {one_line(error)}") from None


def import_target(spec: str, key: str = "target") -> Callable[..., Any]:
    """The callable that ``spec`` (``module:attribute``) names; ``key`` is the config key it came from, for errors."""
    module_name, attribute = split_target(spec, key)
    module = _import_module(module_name, key, spec)
    try:
        target = functools.reduce(getattr, attribute.split("."), module)
    except AttributeError:
        names = [name for name in dir(module) if not name.startswith("_")]
        where = getattr(module, "__file__", None) or module_name
        hint = did_you_mean(attribute, names)
        raise ConfigError(f"{key} {spec!r}: {where} has no attribute {attribute!r}{hint}") from None
    if not callable(target):
        raise ConfigError(f"{key} {spec!r} is not a function or class to call (its type is {type(target).__name__})")
    return target


def call_target(spec: str, key: str, kwargs: Mapping[str, Any], returns: type | tuple[type, ...], wanted: str) -> Any:
    """Import ``spec``, call it with ``kwargs`` and check that it made a ``returns`` (``wanted``: what, in words)."""
    factory = import_target(spec, key)
    try:
        made = factory(**kwargs)
    except Exception as error:  # the user's own code failed: its message, in one line
        raise ConfigError(f"{key} {spec!r} raised {one_line(error)}") from None
    if not isinstance(made, returns):
        raise ConfigError(f"{key} {spec!r} returned a {type(made).__name__}, not {wanted}")
    return made


@dataclass
class TargetKeys:
    """Your own component: the factory ``target`` (``module:function``) and the keyword arguments it is called with."""

    target: str | None = None
    kwargs: Any = None  # a mapping of argument names to values (None: no arguments)

    def check_target(self, kind: str) -> str:
        """The target, checked: given, well-formed, and called with keyword arguments named by strings."""
        if self.target is None:
            raise ConfigError(f"{kind}.name=custom needs {kind}.target: your factory, as module:function")
        split_target(self.target, f"{kind}.target")
        if self.kwargs is None:
            self.kwargs = {}
        if not isinstance(self.kwargs, dict):
            raise ConfigError(f"{kind}.kwargs must be dict, got {self.kwargs!r} ({type(self.kwargs).__name__})")
        if not all(isinstance(arg, str) and arg.isidentifier() for arg in self.kwargs):
            raise ConfigError(f"{kind}.kwargs must map argument names to values, got {self.kwargs!r}")
        return self.target


@register("model", "custom")
@dataclass
class CustomModelConfig(ModelConfig, TargetKeys):
    """Your own model: ``target`` returns an ``nn.Module`` (a classifier for the gradient-based methods, an encoder
    for the embedding methods)."""

    inputs = None

    def validate(self) -> None:
        self.check_target("model")

    def build(self, data: DatasetConfig, out_features: int | None, options: dict[str, Any]) -> Any:
        return call_target(
            self.check_target("model"), "model.target", self.kwargs, torch.nn.Module, "a torch.nn.Module"
        )


@register("dataset", "custom")
@dataclass
class CustomDatasetConfig(ClassDatasetConfig, TargetKeys):
    """Your own data: ``target`` is called with ``split=`` and ``kwargs`` and returns a ``ClassDataset`` or a
    map-style ``Dataset`` of ``(x, label)`` pairs."""

    inputs = "yours"

    def validate(self) -> None:
        self.check_target("dataset")
        if "split" in self.kwargs:
            raise ConfigError("dataset.kwargs cannot set split: the factory is called with split='train', 'val' or "
                              "'test'")

    def classes(self, split: str) -> Any:
        wanted = "a fastadapt ClassDataset or a torch.utils.data.Dataset of (x, label) pairs"
        return call_target(self.check_target("dataset"), "dataset.target", {"split": split, **self.kwargs},
                           (ClassDataset, Dataset), wanted)
