"""One config section as a typed dataclass: unknown keys, types and choices checked by OmegaConf's structured
configs, least values and finiteness by the fields' own metadata; every failure one line naming the key."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fastadapt.components import registered
from fastadapt.errors import ConfigError, did_you_mean

T = TypeVar("T")


def key_of(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def parse_section(cls: type[T], raw: Mapping[str, Any], prefix: str, *, lenient: bool = False) -> T:
    """``raw`` as an instance of the dataclass ``cls`` (defaults filled in); ``lenient`` drops unknown keys
    (a config stored by an earlier version) instead of refusing them."""
    known = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = [key for key in raw if key not in known]
    if unknown and not lenient:
        raise unknown_key(cls, prefix, str(unknown[0]), known)
    values = {key: value for key, value in raw.items() if key in known}
    try:
        typed = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), values))
    except OmegaConfBaseException as error:
        raise ConfigError(_one_line(cls, prefix, error, values)) from None
    _check_numbers(typed, prefix)
    _check_kept(typed, prefix, values)
    validate = getattr(typed, "validate", None)
    if validate is not None:
        validate()
    return typing.cast(T, typed)


def unknown_key(cls: type, prefix: str, key: str, known: list[str]) -> ConfigError:
    """The error for ``key`` that ``cls`` does not have: the key of another component of the section, a close key,
    or an unknown one."""
    name = getattr(cls, "name", "") if getattr(cls, "kind", "") else ""
    if name and any(key in {f.name for f in dataclasses.fields(other)} for other in registered(prefix).values()):
        own = sorted(field for field in known if field not in getattr(cls, "shared_keys", ()))
        return ConfigError(f"{key_of(prefix, key)} does not apply to {prefix}.name={name} (its keys: {own or 'none'})")
    names = [*known, "name"] if name else known
    hint = did_you_mean(key_of(prefix, key), [key_of(prefix, k) for k in names])
    hint = hint or "; `fastadapt train --help` lists the keys"
    return ConfigError(f"unknown config key {key_of(prefix, key)!r}{hint}")


def _one_line(cls: type, prefix: str, error: OmegaConfBaseException, values: Mapping[str, Any]) -> str:
    """OmegaConf's error as ``KEY must be TYPE, got VALUE (type)`` (or its own first line where no type is at fault)."""
    key = str(getattr(error, "key", "") or "").split(".")[0].split("[")[0]
    hints = typing.get_type_hints(cls)
    if key not in hints or key not in values:
        return f"{key_of(prefix, key)}: {str(error).splitlines()[0]}" if key else str(error).splitlines()[0]
    value = values[key]
    choices = _choices(hints[key])
    if choices is not None:
        return f"{key_of(prefix, key)} must be one of {list(choices)}, got {value!r}"
    return f"{key_of(prefix, key)} must be {describe(hints[key])}, got {value!r} ({type(value).__name__})"


def _choices(hint: Any) -> tuple[Any, ...] | None:
    for part in (hint, *typing.get_args(hint)):
        if typing.get_origin(part) is Literal:
            return typing.get_args(part)
    return None


def describe(hint: Any) -> str:
    """A type hint as a user reads it: ``int``, ``float``, ``list``, ``int or None``."""
    parts = list(typing.get_args(hint)) if typing.get_origin(hint) in (typing.Union, types.UnionType) else [hint]
    names = [getattr(typing.get_origin(p) or p, "__name__", str(p)) for p in parts if p is not type(None)]
    return " or ".join(names) + (" or None" if type(None) in parts else "")


def _check_kept(section: Any, prefix: str, values: Mapping[str, Any]) -> None:
    """What was given is what was kept: OmegaConf converts ``-1`` to ``True`` and ``"5"`` to ``5``; only widening an
    integer to a float, and YAML 1.1's reading of ``3e-4`` as a string, are taken as meant."""
    hints = typing.get_type_hints(type(section))
    for key, given in values.items():
        kept = getattr(section, key)
        widened = isinstance(kept, float) and not isinstance(given, bool) and isinstance(given, (int, str))
        if kept == given and type(kept) is type(given) or given is None or widened or isinstance(kept, (list, dict)):
            continue
        wanted = describe(hints[key])
        raise ConfigError(f"{key_of(prefix, key)} must be {wanted}, got {given!r} ({type(given).__name__})")


def _check_numbers(section: Any, prefix: str) -> None:
    """Finite numbers, at least each field's ``minimum``."""
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key_of(prefix, field.name)} must be a finite number, got {value!r}")
        minimum = field.metadata.get("minimum")
        if minimum is not None and isinstance(value, (int, float)) and value < minimum:
            raise ConfigError(f"{key_of(prefix, field.name)} must be at least {minimum}, got {value!r}")


def section_dict(section: Any) -> dict[str, Any]:
    """A section's keys and values, as stored in ``config.yaml``."""
    return dataclasses.asdict(section)
