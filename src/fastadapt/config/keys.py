"""The config keys with their defaults, for ``--help``: the run-level sections, then each registered component's."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastadapt.components import KINDS, registered
from fastadapt.config.run import RUN_SECTIONS, Header


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else None


def key_lines() -> list[str]:
    """One line per key: ``  train.steps (default 1000)``; a component's key also says which ``name`` it goes with."""
    header = [f for f in dataclasses.fields(Header) if f.name not in ("name", "description")]
    lines = [f"  {f.name} (default {_default(f)!r})" for f in header]
    for section, cls in RUN_SECTIONS.items():
        lines += [f"  {section}.{f.name} (default {_default(f)!r})" for f in dataclasses.fields(cls)]
    for kind in KINDS:
        lines.append(f"  {kind}.name: one of {', '.join(sorted(registered(kind)))}")
        owners: dict[tuple[str, str], list[str]] = {}
        for name, component in sorted(registered(kind).items()):
            for f in dataclasses.fields(component):
                owners.setdefault((f.name, repr(_default(f))), []).append(name)
        lines += [
            f"  {kind}.{key} (default {default}) for {kind}.name={'|'.join(names)}"
            for (key, default), names in owners.items()
        ]
    return lines
