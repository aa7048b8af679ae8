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
from typing import Any

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
