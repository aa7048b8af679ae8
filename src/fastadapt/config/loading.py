"""Reading configs: YAML presets and files (``extends:`` inherits), ``key=value`` overrides, and laying one over
another. Everything here works on nested dicts; ``resolve`` turns the result into a typed ``RunConfig``."""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from fastadapt.components import KINDS, lookup
from fastadapt.config.run import DEFAULT_NAMES, SECTIONS, RunConfig, component_name, resolve
from fastadapt.errors import ConfigError, did_you_mean

DEFAULT_PRESET = "protonet-glyphs-5w1s"


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (only the sections are opened: ``model.kwargs`` stays a dict)."""
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


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["train.steps=100", "algorithm.first_order=true"]`` -> a nested dict (values parsed as YAML; the keys are
    checked when the config is resolved, against the component each section names)."""
    flat: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.steps=100)")
        try:
            flat[key] = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: cannot parse the value {text!r}") from None
    return unflatten(flat)


def _section(flat: dict[str, Any], kind: str) -> dict[str, Any]:
    return {key.partition(".")[2]: value for key, value in flat.items() if key.startswith(kind + ".")}


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` laid over ``base`` (flat keys replace). Where ``update`` names another component for a section
    (another algorithm, or your own model's ``target`` instead of a built-in), the keys ``base`` gave that section
    are kept only where the new component has them: the keys of one mean nothing to the other."""
    flat_base, flat_update = flatten(base), flatten(update)
    for kind in KINDS:
        new = component_name(kind, _section(flat_update, kind))
        old = component_name(kind, _section(flat_base, kind)) or DEFAULT_NAMES[kind]
        if new is None or new == old:
            continue
        try:
            keep = {field.name for field in dataclasses.fields(lookup(kind, new))}
        except ConfigError:
            continue  # an unknown name: resolve names it
        flat_base = {k: v for k, v in flat_base.items() if not k.startswith(kind + ".") or k.partition(".")[2] in keep}
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


Loader = Callable[[str, tuple[str, ...]], dict[str, Any]]


def _extended(raw: dict[str, Any], source: str, seen: tuple[str, ...], load: Loader) -> dict[str, Any]:
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


def build_config(
    preset: str | None, overrides: Iterable[str] = (), config_file: str | os.PathLike[str] | None = None
) -> RunConfig:
    """The resolved config of a preset (default: ``DEFAULT_PRESET``) or of a config file, with
    command-line ``key=value`` overrides laid over it."""
    if preset is not None and config_file is not None:
        raise ConfigError("give a preset or a config file, not both (a config file can say `extends: PRESET`)")
    base = load_config_file(config_file) if config_file is not None else load_preset(preset or DEFAULT_PRESET)
    return resolve(merge(base, parse_overrides(overrides)))


def resolve_stored(config: dict[str, Any]) -> RunConfig:
    """``resolve`` for a config stored with a run: keys an earlier version wrote that do not apply are dropped."""
    return resolve(config, lenient=True)
