"""The registry of papers' experiments: every entry is complete and points at real presets."""

from __future__ import annotations

import pytest

from fastadapt.config import build_config
from fastadapt.errors import ConfigError
from fastadapt.reproduce.registry import get, parse, reproductions

ISSUE_NAMES = [
    "maml-omniglot-5w1s", "maml-omniglot-5w5s", "maml-omniglot-20w1s", "maml-omniglot-20w5s", "maml-sinusoid",
    "protonet-omniglot-5w1s", "reptile-omniglot-5w1s", "metasgd-omniglot-5w1s", "anil-omniglot-20w1s",
    "mamlpp-omniglot-20w1s", "metric-omniglot-5w1s", "maml-rl-nav2d", "maml-miniimagenet-5w1s",
]


def test_the_papers_named_by_the_roadmap_are_all_there() -> None:
    assert set(ISSUE_NAMES) <= set(reproductions())


@pytest.mark.parametrize("name", sorted(reproductions()))
def test_every_row_builds_under_both_budgets(name: str) -> None:
    reproduction = get(name)
    assert set(reproduction.budgets) == {"quick", "full"}
    for budget in reproduction.budgets.values():
        for row in reproduction.rows:
            build_config(row.preset, [*row.overrides, *budget.overrides])  # raises on a bad key or value
            for measure in row.measures:
                if measure.paper is not None and reproduction.metric == "accuracy":
                    assert 0 < measure.paper.value <= 1
                    assert measure.paper.ci95 is None or 0 <= measure.paper.ci95 < 0.1


def test_bad_entries_are_named() -> None:
    good = {"title": "t", "source": "s", "metric": "accuracy", "budgets": {"quick": {"overrides": [], "seeds": 1}},
            "rows": [{"label": "r", "preset": "protonet-glyphs-5w1s", "measures": [{"label": "m"}]}]}
    assert parse("x", good).rows[0].preset == "protonet-glyphs-5w1s"
    with pytest.raises(ConfigError, match="row 'r': no preset named 'nope'"):
        parse("x", {**good, "rows": [{"label": "r", "preset": "nope", "measures": []}]})
    with pytest.raises(ConfigError, match="metric must be one of"):
        parse("x", {**good, "metric": "f1"})
    with pytest.raises(ConfigError, match="budgets are"):
        parse("x", {**good, "budgets": {"medium": {}}})
    with pytest.raises(ConfigError, match="paper must be"):
        row = {"label": "r", "preset": "protonet-glyphs-5w1s", "measures": [{"label": "m", "paper": 98.7}]}
        parse("x", {**good, "rows": [row]})
    with pytest.raises(ConfigError, match="measure 'm': a measure sets only task.\\* and test.\\* keys .* not "
                                          "algorithm.inner_lr: put those in the row's overrides"):
        row = {"label": "r", "preset": "protonet-glyphs-5w1s",
               "measures": [{"label": "m", "set": {"test.inner_steps": 1, "algorithm.inner_lr": 0.1}}]}
        parse("x", {**good, "rows": [row]})
    with pytest.raises(ConfigError, match="no reproduction named 'maml-omniglot'.*--list"):
        get("maml-omniglot")


@pytest.mark.parametrize(("tune", "message"), [
    ({"keys": ["algorithm.inner_lr"], "values": [0.1], "measure": "other"}, r"tune.measure must be one of .*\['m'\]"),
    ({"keys": ["inner_lr"], "values": [0.1], "measure": "m"}, "its keys are"),
    ({"keys": ["algorithm.inner_lr"], "values": [], "measure": "m"}, "its values are"),
    ({"keys": ["algorithm.inner_lr"], "values": [0.1], True: "m"}, "tune must be"),  # YAML 1.1 reads `on:` as True
])
def test_a_bad_tune_is_named(tune: dict[object, object], message: str) -> None:
    row = {"label": "r", "preset": "maml-sinusoid", "measures": [{"label": "m"}], "tune": tune}
    entry = {"title": "t", "source": "s", "metric": "mse", "budgets": {"quick": {"overrides": [], "seeds": 1}},
             "rows": [row]}
    with pytest.raises(ConfigError, match=message):
        parse("x", entry)


def test_the_pretrained_baselines_tune_their_step_on_validation() -> None:
    sinusoid = get("maml-sinusoid").rows[1].tune
    nav2d = get("maml-rl-nav2d").rows[1].tune
    assert sinusoid is not None and sinusoid.keys == ("algorithm.inner_lr",) and sinusoid.measure == "5-shot, 10 steps"
    assert nav2d is not None and nav2d.keys == ("algorithm.inner_lr", "algorithm.later_inner_lr")
    assert 0.01 in sinusoid.values and 0.1 in nav2d.values  # MAML's own steps are among the candidates
    assert get("maml-sinusoid").rows[0].tune is None and get("maml-rl-nav2d").rows[0].tune is None
