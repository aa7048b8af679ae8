"""The papers' experiments that ``fastadapt reproduce`` knows, read from ``papers.yaml``.

A ``Reproduction`` is rows of (preset, overrides) trained once per seed; each row's ``Measure``s
test the trained model, optionally with test-time settings changed, next to the paper's number.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import yaml

from fastadapt.config import preset_names
from fastadapt.errors import ConfigError

BUDGETS = ("quick", "full")
METRICS = ("accuracy", "mse", "return")
FIGURES = ("sinusoid", "steps", "embedding")


@dataclass(frozen=True)
class PaperNumber:
    """A published result: ``value`` and its 95% half-width ``ci95`` (None where none was published)."""

    value: float
    ci95: float | None


@dataclass(frozen=True)
class Measure:
    """One number of the table: the trained row tested with ``set`` (dotted config keys) applied."""

    label: str
    set: dict[str, Any] = field(default_factory=dict)
    paper: PaperNumber | None = None


@dataclass(frozen=True)
class Row:
    """One trained model (per seed): ``preset`` plus ``overrides``, and what is measured on it."""

    label: str
    preset: str
    overrides: tuple[str, ...]
    measures: tuple[Measure, ...]


@dataclass(frozen=True)
class Budget:
    """Overrides added to every row, and how many seeds each row trains."""

    overrides: tuple[str, ...]
    seeds: int


@dataclass(frozen=True)
class Reproduction:
    name: str
    title: str
    source: str
    metric: str
    rows: tuple[Row, ...]
    budgets: dict[str, Budget]
    figures: tuple[str, ...]


def _require(entry: dict[str, Any], key: str, where: str) -> Any:
    if key not in entry:
        raise ConfigError(f"{where} has no {key!r}")
    return entry[key]


def _paper(raw: Any, where: str) -> PaperNumber | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("value"), (int, float)):
        raise ConfigError(f"{where}: paper must be {{value: number, ci95: number or null}}, got {raw!r}")
    ci = raw.get("ci95")
    return PaperNumber(float(raw["value"]), None if ci is None else float(ci))


def parse(name: str, entry: dict[str, Any]) -> Reproduction:
    """One entry of ``papers.yaml``, checked: presets exist, budgets and figures are known."""
    where = f"reproduction {name!r}"
    metric = _require(entry, "metric", where)
    if metric not in METRICS:
        raise ConfigError(f"{where}: metric must be one of {METRICS}, got {metric!r}")
    rows = []
    for raw in _require(entry, "rows", where):
        label = _require(raw, "label", where)
        preset = _require(raw, "preset", f"{where} row {label!r}")
        if preset not in preset_names():
            raise ConfigError(f"{where} row {label!r}: no preset named {preset!r}")
        measures = tuple(
            Measure(m["label"], dict(m.get("set") or {}), _paper(m.get("paper"), f"{where} row {label!r}"))
            for m in _require(raw, "measures", f"{where} row {label!r}")
        )
        rows.append(Row(label, preset, tuple(raw.get("overrides", ())), measures))
    budgets = {}
    for budget, raw in _require(entry, "budgets", where).items():
        if budget not in BUDGETS:
            raise ConfigError(f"{where}: budgets are {BUDGETS}, got {budget!r}")
        seeds = raw.get("seeds", 1)
        if not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"{where}: the {budget} budget's seeds must be a positive integer, got {seeds!r}")
        budgets[budget] = Budget(tuple(raw.get("overrides", ())), seeds)
    figures = tuple(entry.get("figures", ()))
    unknown = set(figures) - set(FIGURES)
    if unknown:
        raise ConfigError(f"{where}: unknown figures {sorted(unknown)}; known: {FIGURES}")
    return Reproduction(name, _require(entry, "title", where), _require(entry, "source", where), metric, tuple(rows), budgets, figures)


@cache
def reproductions() -> dict[str, Reproduction]:
    """Every known reproduction by name (keys starting with ``_`` hold YAML anchors only)."""
    text = importlib.resources.files("fastadapt.reproduce").joinpath("papers.yaml").read_text()
    return {name: parse(name, entry) for name, entry in yaml.safe_load(text).items() if not name.startswith("_")}


def get(name: str) -> Reproduction:
    """The reproduction called ``name``, or an error listing the names."""
    known = reproductions()
    if name not in known:
        raise ConfigError(f"no reproduction named {name!r}; `fastadapt reproduce --list` shows them: {', '.join(sorted(known))}")
    return known[name]
