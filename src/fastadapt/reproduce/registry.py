"""The papers' experiments that ``fastadapt reproduce`` knows, read from ``papers.yaml``.

A ``Reproduction`` is rows of (preset, overrides) trained once per seed; each row's ``Measure``s
test the trained model, optionally with test-time settings changed, next to the paper's number and
the table it is printed in. Each row carries ``Protocols``: the paper's protocol and ours (split,
rotations, queries, evaluation, and optionally training), so that a gap can be read as the
method's or the protocol's.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

import yaml

from fastadapt.config import preset_names
from fastadapt.errors import ConfigError

BUDGETS = ("quick", "full")
METRICS = ("accuracy", "mse", "return")
FIGURES = ("sinusoid", "steps", "embedding")
SAME = "as the paper"  # a field of our protocol that is the paper's
UNCHECKED = "unchecked"  # how a field of the paper's protocol starts where it could not be checked


@dataclass(frozen=True)
class PaperNumber:
    """A published result: ``value``, its 95% half-width ``ci95`` (None where none was published),
    and ``table``, where the paper prints it."""

    value: float
    ci95: float | None
    table: str | None = None


@dataclass(frozen=True)
class Protocol:
    """How a number was obtained: the class split, the rotations, the queries per class (training
    and test) and the evaluation; ``images`` how the files became the model's input and ``training`` the
    meta-training settings, where they matter."""

    split: str
    rotations: str
    queries: str
    evaluation: str
    images: str | None = None
    training: str | None = None


REQUIRED = ("split", "rotations", "queries", "evaluation")
OPTIONAL = ("images", "training")
FIELDS = (*REQUIRED, *OPTIONAL)
MEASURABLE = ("task.", "test.")  # what a measure may change on a trained model: how it is tested, not the model


@dataclass(frozen=True)
class Protocols:
    """The paper's protocol and ours. A field of ``ours`` that reads ``SAME`` is the paper's; a field
    of ``paper`` that starts with ``UNCHECKED`` could not be checked against the paper or its code."""

    paper: Protocol
    ours: Protocol

    def unchecked(self) -> tuple[str, ...]:
        """The fields of the paper's protocol that could not be checked."""
        return tuple(name for name in FIELDS if (getattr(self.paper, name) or "").startswith(UNCHECKED))

    def differences(self) -> tuple[str, ...]:
        """The fields in which ours is known to differ from the paper's: both stated, the paper's
        checked, ours not ``SAME``."""
        known = [name for name in FIELDS if getattr(self.paper, name) is not None and name not in self.unchecked()]
        return tuple(name for name in known if getattr(self.ours, name) not in (SAME, None))

    def listing(self) -> dict[str, Any]:
        """Both protocols, and the fields that differ or are unchecked."""
        return {**asdict(self), "differs": list(self.differences()), "unchecked": list(self.unchecked())}


@dataclass(frozen=True)
class Measure:
    """One number of the table: the trained row tested with ``set`` (dotted config keys) applied."""

    label: str
    set: dict[str, Any] = field(default_factory=dict)
    paper: PaperNumber | None = None


@dataclass(frozen=True)
class Tune:
    """A test-time setting picked on validation tasks before the row is measured, as papers tune a
    baseline's fine-tuning step: each of ``values`` is given to every key of ``keys``, each is tested on
    the validation split under the settings of the row's measure labelled ``measure``, and the best one is used
    for every measure."""

    keys: tuple[str, ...]
    values: tuple[float, ...]
    measure: str

    def listing(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "values": list(self.values), "measure": self.measure}


@dataclass(frozen=True)
class Unmeasured:
    """A paper's number that no test of ours runs yet, and ``why`` (the missing feature)."""

    label: str
    paper: PaperNumber
    why: str


@dataclass(frozen=True)
class Row:
    """One trained model (per seed): ``preset`` plus ``overrides``, what is measured on it, the
    paper's numbers not measured yet, and the protocols it is compared under."""

    label: str
    preset: str
    overrides: tuple[str, ...]
    measures: tuple[Measure, ...]
    protocol: Protocols | None = None
    unmeasured: tuple[Unmeasured, ...] = ()
    tune: Tune | None = None

    def listing(self) -> dict[str, Any]:
        """The row as ``fastadapt reproduce --list --json`` prints it."""
        return {
            "label": self.label,
            "preset": self.preset,
            "overrides": list(self.overrides),
            "measures": [asdict(m) for m in self.measures],
            "unmeasured": [asdict(u) for u in self.unmeasured],
            "protocol": None if self.protocol is None else self.protocol.listing(),
            "tune": None if self.tune is None else self.tune.listing(),
        }


@dataclass(frozen=True)
class Budget:
    """Overrides added to every row, and how many seeds each row trains."""

    overrides: tuple[str, ...]
    seeds: int


@dataclass(frozen=True)
class Reproduction:
    """A paper's experiment: its rows, where its numbers come from, its budgets and figures."""

    name: str
    title: str
    source: str
    metric: str
    rows: tuple[Row, ...]
    budgets: dict[str, Budget]
    figures: tuple[str, ...]

    def differences(self) -> tuple[str, ...]:
        """The protocol fields in which any row is known to differ from its paper, in ``FIELDS`` order."""
        return _union(row.protocol.differences() for row in self.rows if row.protocol is not None)

    def unchecked(self) -> tuple[str, ...]:
        """The protocol fields that could not be checked against any row's paper, in ``FIELDS`` order."""
        return _union(row.protocol.unchecked() for row in self.rows if row.protocol is not None)

    def listing(self) -> dict[str, Any]:
        """The reproduction as ``fastadapt reproduce --list --json`` prints it."""
        return {
            "title": self.title,
            "source": self.source,
            "metric": self.metric,
            "figures": list(self.figures),
            "budgets": {name: asdict(budget) for name, budget in self.budgets.items()},
            "rows": [row.listing() for row in self.rows],
        }


def _union(groups: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    found = {name for group in groups for name in group}
    return tuple(name for name in FIELDS if name in found)


def _require(entry: dict[str, Any], key: str, where: str) -> Any:
    if key not in entry:
        raise ConfigError(f"{where} has no {key!r}")
    return entry[key]


def _paper(raw: Any, where: str, table: str | None) -> PaperNumber | None:
    """A ``paper: {value, ci95, table}`` mapping; ``table`` defaults to the row's or the entry's."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("value"), (int, float)):
        raise ConfigError(f"{where}: paper must be {{value: number, ci95: number or null}}, got {raw!r}")
    ci = raw.get("ci95")
    return PaperNumber(float(raw["value"]), None if ci is None else float(ci), raw.get("table", table))


def _protocol_side(raw: Any, where: str, side: str) -> Protocol:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: protocol.{side} must map {', '.join(REQUIRED)} to text, got {raw!r}")
    unknown = set(raw) - set(FIELDS)
    missing = [name for name in REQUIRED if name not in raw]
    if unknown or missing:
        raise ConfigError(f"{where}: protocol.{side} needs {', '.join(REQUIRED)} (and may give {', '.join(OPTIONAL)}); "
                          f"missing {missing}, unknown {sorted(unknown)}")
    for name, text in raw.items():
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}: protocol.{side}.{name} must be a non-empty text, got {text!r}")
        if side == "paper" and text == SAME:
            raise ConfigError(f"{where}: protocol.paper.{name} says {SAME!r}: describe the paper's protocol there")
    return Protocol(**raw)


def _protocol(raw: Any, where: str) -> Protocols | None:
    """A ``protocol: {paper: {...}, ours: {...}}`` mapping, checked; None where none is given."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"paper", "ours"}:
        raise ConfigError(f"{where}: protocol must be {{paper: {{...}}, ours: {{...}}}}, got {raw!r}")
    return Protocols(_protocol_side(raw["paper"], where, "paper"), _protocol_side(raw["ours"], where, "ours"))


def _unmeasured(raw: dict[str, Any], where: str, table: str | None) -> Unmeasured:
    label = _require(raw, "label", where)
    where = f"{where} unmeasured {label!r}"
    paper = _paper(_require(raw, "paper", where), where, table)
    if paper is None:
        raise ConfigError(f"{where}: give the paper's number that is not measured")
    return Unmeasured(label, paper, str(_require(raw, "why", where)))


def _tune(raw: Any, where: str, measures: tuple[Measure, ...]) -> Tune | None:
    """A row's ``tune: {keys: [...], values: [...], measure: <label>}``, checked; None where none is given."""
    if raw is None:
        return None
    form = "tune must be {keys: [dotted keys], values: [numbers], measure: one of the row's measure labels}"
    if not isinstance(raw, dict) or set(raw) != {"keys", "values", "measure"}:
        raise ConfigError(f"{where}: {form}, got {raw!r}")
    keys, values = raw["keys"], raw["values"]
    if not keys or not all(isinstance(k, str) and "." in k for k in keys):
        raise ConfigError(f"{where}: {form}; its keys are {keys!r}")
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{where}: {form}; its values are {values!r}")
    labels = [m.label for m in measures]
    if raw["measure"] not in labels:
        raise ConfigError(f"{where}: tune.measure must be one of the row's measures {labels}, got {raw['measure']!r}")
    return Tune(tuple(keys), tuple(float(v) for v in values), raw["measure"])


def _measure(raw: dict[str, Any], where: str, table: str | None) -> Measure:
    """One measure of a row; its ``set`` may change only how the trained model is tested, which both the table's
    test and the steps figure apply without rebuilding the model."""
    settings = dict(raw.get("set") or {})
    other = sorted(key for key in settings if not key.startswith(MEASURABLE))
    if other:
        raise ConfigError(f"{where} measure {raw['label']!r}: a measure sets only task.* and test.* keys (how the "
                          f"trained model is tested), not {', '.join(other)}: put those in the row's overrides")
    return Measure(raw["label"], settings, _paper(raw.get("paper"), where, table))


def _row(raw: dict[str, Any], where: str, table: str | None, protocol: Protocols | None) -> Row:
    label = _require(raw, "label", where)
    where = f"{where} row {label!r}"
    preset = _require(raw, "preset", where)
    if preset not in preset_names():
        raise ConfigError(f"{where}: no preset named {preset!r}")
    table = raw.get("table", table)
    measures = tuple(_measure(m, where, table) for m in _require(raw, "measures", where))
    unmeasured = tuple(_unmeasured(u, where, table) for u in raw.get("unmeasured", ()))
    own = _protocol(raw.get("protocol"), where)
    tune = _tune(raw.get("tune"), where, measures)
    return Row(label, preset, tuple(raw.get("overrides", ())), measures, own or protocol, unmeasured, tune)


def _budgets(raw: dict[str, Any], where: str) -> dict[str, Budget]:
    budgets = {}
    for budget, spec in raw.items():
        if budget not in BUDGETS:
            raise ConfigError(f"{where}: budgets are {BUDGETS}, got {budget!r}")
        seeds = spec.get("seeds", 1)
        if not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"{where}: the {budget} budget's seeds must be a positive integer, got {seeds!r}")
        budgets[budget] = Budget(tuple(spec.get("overrides", ())), seeds)
    return budgets


def parse(name: str, entry: dict[str, Any]) -> Reproduction:
    """One entry of ``papers.yaml`` (or a reproduction of your own), checked: presets exist,
    budgets, figures, paper numbers and protocols are well formed."""
    where = f"reproduction {name!r}"
    metric = _require(entry, "metric", where)
    if metric not in METRICS:
        raise ConfigError(f"{where}: metric must be one of {METRICS}, got {metric!r}")
    protocol = _protocol(entry.get("protocol"), where)
    rows = tuple(_row(raw, where, entry.get("table"), protocol) for raw in _require(entry, "rows", where))
    figures = tuple(entry.get("figures", ()))
    unknown = set(figures) - set(FIGURES)
    if unknown:
        raise ConfigError(f"{where}: unknown figures {sorted(unknown)}; known: {FIGURES}")
    return Reproduction(name, _require(entry, "title", where), _require(entry, "source", where), metric, rows,
                        _budgets(_require(entry, "budgets", where), where), figures)


def _papers_numbers(row: Row) -> list[tuple[str, PaperNumber]]:
    measured = [(m.label, m.paper) for m in row.measures if m.paper is not None]
    return measured + [(u.label, u.paper) for u in row.unmeasured]


def _complete(reproduction: Reproduction) -> Reproduction:
    """``reproduction``, refused unless every row names its protocols and every paper number its table."""
    for row in reproduction.rows:
        where = f"papers.yaml: reproduction {reproduction.name!r} row {row.label!r}"
        if row.protocol is None:
            raise ConfigError(f"{where} names no protocol: give `protocol: {{paper: ..., ours: ...}}` "
                              "on the entry or the row")
        for label, paper in _papers_numbers(row):
            if not paper.table:
                raise ConfigError(f"{where}: the paper's number for {label!r} names no table: "
                                  "give `table` on the entry, the row or the number")
    return reproduction


@cache
def reproductions() -> dict[str, Reproduction]:
    """Every known reproduction by name (keys starting with ``_`` hold YAML anchors only); each row
    of ``papers.yaml`` must name its protocols and the table of each of its paper's numbers."""
    text = importlib.resources.files("fastadapt.reproduce").joinpath("papers.yaml").read_text()
    entries = yaml.safe_load(text).items()
    return {name: _complete(parse(name, entry)) for name, entry in entries if not name.startswith("_")}


def get(name: str) -> Reproduction:
    """The reproduction called ``name``, or an error listing the names."""
    known = reproductions()
    if name not in known:
        names = ", ".join(sorted(known))
        raise ConfigError(f"no reproduction named {name!r}; `fastadapt reproduce --list` shows them: {names}")
    return known[name]
