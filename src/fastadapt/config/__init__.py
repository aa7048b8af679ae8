"""Run configuration: YAML presets and files, ``key=value`` overrides, the typed ``RunConfig``, and building the
run's parts from it.

A config has the run-level keys (``name``, ``seed``, ``device`` ...) and the sections ``dataset``, ``task``,
``train_task``, ``model``, ``algorithm``, ``train`` and ``test``. ``dataset``, ``model`` and ``algorithm`` name a
registered component (``fastadapt.components``), whose dataclass declares the section's other keys; a misspelt key
or an impossible value is one line naming the key. ``model.target`` and ``dataset.target`` name your own model and
dataset as importable factories (``module:function``, see ``fastadapt.targets``): their section's ``name`` is then
``custom``.
"""

import fastadapt.config.builtins  # noqa: F401  (registers the built-in components)
from fastadapt.config.build import (
    Learner,
    Tasks,
    build_learner,
    build_tasks,
    check_model_fits,
    device_of,
    optimizer_for,
)
from fastadapt.config.loading import (
    DEFAULT_PRESET,
    build_config,
    flatten,
    load_config_file,
    load_preset,
    merge,
    parse_overrides,
    preset_names,
    resolve_stored,
    unflatten,
)
from fastadapt.config.run import CUSTOM, SECTIONS, RunConfig, TestSection, resolve

__all__ = [
    "CUSTOM", "DEFAULT_PRESET", "SECTIONS", "Learner", "RunConfig", "Tasks", "TestSection", "build_config",
    "build_learner", "build_tasks",
    "check_model_fits", "device_of", "flatten", "load_config_file", "load_preset", "merge", "optimizer_for",
    "parse_overrides", "preset_names", "resolve", "resolve_stored", "unflatten",
]
