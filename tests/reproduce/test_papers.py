"""The papers' numbers, their tables and the protocols of ``papers.yaml``, and how
``fastadapt reproduce --list`` shows them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from fastadapt.cli import main
from fastadapt.config import build_config
from fastadapt.errors import ConfigError
from fastadapt.reproduce import registry
from fastadapt.reproduce.registry import REQUIRED, SAME, PaperNumber, Protocol, Protocols, Row, get, parse

MAML = "Finn et al. 2017 (arXiv:1703.03400 v3)"
REPTILE = "Nichol et al. 2018 (arXiv:1803.02999 v3)"

# (reproduction, row, measure, value, ci95, where the paper prints it): every number checked
# against the paper (see papers.yaml for what could not be).
MEASURED = [
    ("maml-sinusoid", "MAML (meta-trained with K=10)", "5-shot, 1 step", 0.67, None, f"{MAML}, appendix Table 2"),
    ("maml-sinusoid", "MAML (meta-trained with K=10)", "5-shot, 5 steps", 0.38, None, f"{MAML}, appendix Table 2"),
    ("maml-sinusoid", "MAML (meta-trained with K=10)", "5-shot, 10 steps", 0.35, None, f"{MAML}, appendix Table 2"),
    ("maml-sinusoid", "pretrained on all tasks", "5-shot, 1 step", 2.41, None, f"{MAML}, appendix Table 2"),
    ("maml-sinusoid", "pretrained on all tasks", "5-shot, 5 steps", 2.23, None, f"{MAML}, appendix Table 2"),
    ("maml-sinusoid", "pretrained on all tasks", "5-shot, 10 steps", 2.19, None, f"{MAML}, appendix Table 2"),
    ("maml-rl-nav2d", "MAML-RL", "0 steps", -40.41, None, f"{MAML}, appendix Table 4"),
    ("maml-rl-nav2d", "MAML-RL", "1 step", -11.68, None, f"{MAML}, appendix Table 4"),
    ("maml-rl-nav2d", "MAML-RL", "2 steps", -3.33, None, f"{MAML}, appendix Table 4"),
    ("maml-rl-nav2d", "MAML-RL", "3 steps", -3.23, None, f"{MAML}, appendix Table 4"),
    ("maml-rl-cheetah-dir", "MAML-RL", "0 steps", -50.69, None, f"{MAML}, appendix Table 5"),
    ("maml-rl-cheetah-dir", "MAML-RL", "1 step", 293.19, None, f"{MAML}, appendix Table 5"),
    ("maml-rl-cheetah-dir", "MAML-RL", "2 steps", 313.48, None, f"{MAML}, appendix Table 5"),
    ("maml-rl-cheetah-dir", "MAML-RL", "3 steps", 315.65, None, f"{MAML}, appendix Table 5"),
    ("maml-omniglot-5w1s", "MAML", "5-way 1-shot", 0.987, 0.004, f"{MAML}, Table 1"),
    ("maml-omniglot-5w5s", "MAML", "5-way 5-shot", 0.999, 0.001, f"{MAML}, Table 1"),
    ("maml-omniglot-20w1s", "MAML", "20-way 1-shot", 0.958, 0.003, f"{MAML}, Table 1"),
    ("maml-omniglot-20w5s", "MAML", "20-way 5-shot", 0.989, 0.002, f"{MAML}, Table 1"),
    ("maml-miniimagenet-5w1s", "MAML", "5-way 1-shot", 0.4870, 0.0184, f"{MAML}, Table 1"),
    ("maml-miniimagenet-5w5s", "MAML", "5-way 5-shot", 0.6311, 0.0092, f"{MAML}, Table 1"),
    ("reptile-omniglot-5w1s", "Reptile", "5-way 1-shot, transductive", 0.9768, 0.0004, f"{REPTILE}, Table 2"),
    ("reptile-omniglot-5w5s", "Reptile", "5-way 5-shot, transductive", 0.9948, 0.0006, f"{REPTILE}, Table 2"),
    ("reptile-omniglot-20w1s", "Reptile", "20-way 1-shot, transductive", 0.8943, 0.0014, f"{REPTILE}, Table 2"),
    ("reptile-omniglot-20w5s", "Reptile", "20-way 5-shot, transductive", 0.9712, 0.0032, f"{REPTILE}, Table 2"),
    ("reptile-miniimagenet-5w1s", "Reptile", "5-way 1-shot, transductive", 0.4997, 0.0032, REPTILE),
    ("reptile-miniimagenet-5w5s", "Reptile", "5-way 5-shot, transductive", 0.6599, 0.0058, REPTILE),
]
# The non-transductive rows: measured with each query normalized together with the support set.
NON_TRANSDUCTIVE = [
    ("reptile-omniglot-5w1s", "5-way 1-shot, non-transductive", 0.9539, None, f"{REPTILE}, Table 2"),
    ("reptile-omniglot-5w5s", "5-way 5-shot, non-transductive", 0.9890, None, f"{REPTILE}, Table 2"),
    ("reptile-omniglot-20w1s", "20-way 1-shot, non-transductive", 0.8814, None, f"{REPTILE}, Table 2"),
    ("reptile-omniglot-20w5s", "20-way 5-shot, non-transductive", 0.9665, None, f"{REPTILE}, Table 2"),
    ("reptile-miniimagenet-5w1s", "5-way 1-shot, non-transductive", 0.4707, 0.0026, REPTILE),
    ("reptile-miniimagenet-5w5s", "5-way 5-shot, non-transductive", 0.6274, 0.0037, REPTILE),
]
EVERY_ROW = [(name, row) for name, item in registry.reproductions().items() for row in item.rows]


def _row(name: str, label: str) -> Row:
    return next(row for row in get(name).rows if row.label == label)


@pytest.mark.parametrize("name, label, measure, value, ci95, table", MEASURED)
def test_the_papers_numbers_and_their_tables(name: str, label: str, measure: str, value: float, ci95: float | None,
                                             table: str) -> None:
    paper = next(m for m in _row(name, label).measures if m.label == measure).paper
    assert paper is not None and (paper.value, paper.ci95) == (pytest.approx(value), ci95)
    assert paper.table is not None and paper.table.startswith(table)


@pytest.mark.parametrize("name, measure, value, ci95, table", NON_TRANSDUCTIVE)
def test_the_non_transductive_rows_are_measured_with_each_query_beside_the_support_set(
    name: str, measure: str, value: float, ci95: float | None, table: str
) -> None:
    item = next(m for m in get(name).rows[0].measures if m.label == measure)
    assert item.set == {"test.statistics": "support_and_query"} and item.paper is not None
    assert (item.paper.value, item.paper.ci95) == (pytest.approx(value), ci95)
    assert item.paper.table is not None and item.paper.table.startswith(table)


def test_no_false_source_notes_remain() -> None:
    for item in registry.reproductions().values():
        assert "published as a figure" not in item.source and "no Omniglot number" not in item.source
    assert "Table 1" in get("maml-miniimagenet-5w1s").source and "Table 2" in get("reptile-omniglot-5w1s").source
    assert [m.label for m in _row("maml-rl-nav2d", "MAML-RL").measures] == ["0 steps", "1 step", "2 steps", "3 steps"]


@pytest.mark.parametrize("name, row", EVERY_ROW, ids=[f"{n}/{r.label}" for n, r in EVERY_ROW])
def test_every_row_names_both_protocols(name: str, row: Row) -> None:
    assert row.protocol is not None
    for side in (row.protocol.paper, row.protocol.ours):
        assert all(isinstance(getattr(side, f), str) and getattr(side, f).strip() for f in REQUIRED)
    assert all(getattr(row.protocol.paper, f) != SAME for f in REQUIRED)


@pytest.mark.parametrize("name, row", EVERY_ROW, ids=[f"{n}/{r.label}" for n, r in EVERY_ROW])
def test_every_measures_settings_are_keys_of_its_preset(name: str, row: Row) -> None:
    """A misspelt ``set`` key would only fail after training."""
    for measure in row.measures:
        build_config(row.preset, [*row.overrides, *(f"{key}={value}" for key, value in measure.set.items())])


def _ours(row: Row, field: str) -> str:
    """Our protocol's text for ``field``, the paper's where ours is the same."""
    assert row.protocol is not None
    text = getattr(row.protocol.ours, field)
    return getattr(row.protocol.paper, field) if text == SAME else text


@pytest.mark.parametrize("name, row", EVERY_ROW, ids=[f"{n}/{r.label}" for n, r in EVERY_ROW])
def test_our_protocol_says_what_the_preset_does(name: str, row: Row) -> None:
    """``ours`` is kept in step with the presets: their test episodes and checkpoint, test queries and Omniglot
    protocol."""
    config = build_config(row.preset, list(row.overrides))
    evaluation = _ours(row, "evaluation")
    episodes = re.search(r"(\d[\d,]*) (fixed )?test tasks", evaluation)
    assert episodes is not None and int(episodes.group(1).replace(",", "")) == config.test.episodes
    if re.search(r"the last (state|checkpoint)", evaluation):  # without validation a run has only its last state
        assert config.test.checkpoint == "last" or not config.dataset.has_validation()
    if "best on validation" in evaluation:
        assert config.test.checkpoint == "best" and config.dataset.has_validation()
    queries = _ours(row, "queries")
    if "as many per class as the shots" in queries:
        assert config.task.queries == config.task.shots
    elif config.dataset.problem == "classification":
        stated = re.search(r"test:? (\d+)", queries) or re.search(r"(\d+) per class", queries)
        assert stated is not None and int(stated.group(1)) == config.task.queries
    dataset: Any = config.dataset
    if dataset.name == "omniglot":
        assert ("Vinyals" in _ours(row, "split")) == (dataset.scheme == "vinyals")
        assert ("new classes" in _ours(row, "rotations")) == dataset.rotations
        assert ("rotated by a random multiple of 90" in _ours(row, "rotations")) == dataset.task_rotations


def test_differences_leave_out_what_is_the_papers_or_unchecked() -> None:
    paper = Protocol("random", "unchecked: how", "1 per class", "600 tasks", None)
    ours = Protocol("Vinyals", "as new classes", SAME, "600 tasks, best checkpoint", "SGD")
    both = Protocols(paper, ours)
    assert both.differences() == ("split", "evaluation") and both.unchecked() == ("rotations",)
    listing = both.listing()
    assert listing["differs"] == ["split", "evaluation"] and listing["ours"]["queries"] == SAME


GOOD = {"title": "t", "source": "s", "table": "Someone 2020, Table 9", "metric": "accuracy",
        "budgets": {"quick": {"overrides": [], "seeds": 1}},
        "protocol": {"paper": {"split": "a", "rotations": "b", "queries": "c", "evaluation": "d"},
                     "ours": {"split": SAME, "rotations": SAME, "queries": "e", "evaluation": SAME}},
        "rows": [{"label": "r", "preset": "protonet-glyphs-5w1s",
                  "measures": [{"label": "m", "paper": {"value": 0.9, "ci95": None}}],
                  "unmeasured": [{"label": "u", "paper": {"value": 0.8, "ci95": 0.01}, "why": "needs X"}]}]}


def _with(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def test_tables_default_from_the_entry_and_protocols_from_the_entry_or_the_row() -> None:
    row = parse("x", GOOD).rows[0]
    assert row.measures[0].paper == PaperNumber(0.9, None, "Someone 2020, Table 9")
    assert row.unmeasured[0].paper.table == "Someone 2020, Table 9" and row.unmeasured[0].why == "needs X"
    assert row.protocol is not None and row.protocol.differences() == ("queries",)
    same = {**GOOD["protocol"], "ours": GOOD["protocol"]["paper"]}
    own = {**GOOD["rows"][0], "table": "Other 2021, Table 3", "protocol": same}
    row = parse("x", _with(rows=[own])).rows[0]
    assert row.measures[0].paper is not None and row.measures[0].paper.table == "Other 2021, Table 3"
    assert row.protocol is not None and row.protocol.ours.queries == "c"


@pytest.mark.parametrize("protocol, message", [
    ({"paper": GOOD["protocol"]["paper"]}, "protocol must be"),
    ({**GOOD["protocol"], "ours": {"split": SAME}}, r"protocol.ours needs split, rotations, queries, evaluation"),
    ({**GOOD["protocol"], "ours": {**GOOD["protocol"]["ours"], "splits": "x"}}, r"unknown \['splits'\]"),
    ({**GOOD["protocol"], "paper": {**GOOD["protocol"]["paper"], "split": SAME}}, "describe the paper's protocol"),
    ({**GOOD["protocol"], "ours": {**GOOD["protocol"]["ours"], "queries": ""}}, "must be a non-empty text"),
])
def test_bad_protocols_are_named(protocol: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse("x", _with(protocol=protocol))


def test_papers_yaml_entries_need_protocols_and_tables() -> None:
    with pytest.raises(ConfigError, match="row 'r' names no protocol"):
        registry._complete(parse("x", {k: v for k, v in GOOD.items() if k != "protocol"}))
    with pytest.raises(ConfigError, match="number for 'm' names no table"):
        registry._complete(parse("x", {k: v for k, v in GOOD.items() if k != "table"}))
    with pytest.raises(ConfigError, match="unmeasured 'u': give the paper's number"):
        parse("x", _with(rows=[{**GOOD["rows"][0], "unmeasured": [{"label": "u", "paper": None, "why": "w"}]}]))


def test_the_listing_names_numbers_tables_and_protocols(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing) == set(registry.reproductions())
    for entry in listing.values():
        for row in entry["rows"]:
            assert set(row["protocol"]) == {"paper", "ours", "differs", "unchecked"}
            assert all(row["protocol"][side][f] for side in ("paper", "ours") for f in REQUIRED)
            assert all(m["paper"] is None or m["paper"]["table"] for m in row["measures"])
    reptile, first = listing["reptile-omniglot-5w1s"]["rows"]
    assert reptile["measures"][0]["paper"] == {"value": 0.9768, "ci95": 0.0004, "table": f"{REPTILE}, Table 2"}
    assert reptile["measures"][1]["paper"]["value"] == 0.9539 and reptile["unmeasured"] == []
    # split, rotations and the images: the paper's
    assert {"queries", "evaluation", "training"} == set(reptile["protocol"]["differs"])
    # the second row reads the images and draws the weights as the library does by default: it measures the two
    assert first["overrides"] == ["dataset.resample=lanczos", "dataset.invert=true", "model.init=torch",
                                  "model.bn_eps=0.00001", "model.padding=torch", "model.readout=auto"]
    assert set(first["protocol"]["differs"]) == {"queries", "evaluation", "images", "training"}
    assert first["measures"] == reptile["measures"]
    assert main(["reproduce", "--list"]) == 0
    text = capsys.readouterr().out
    line = r"^maml-omniglot-5w1s +MAML, Omniglot 5-way 1-shot\n +protocol: ours differs from the paper's in split$"
    assert re.search(line, text, re.MULTILINE)
