"""Ours against the paper's: hand-computed seed intervals, gaps and overlaps."""

from __future__ import annotations

import math

import pytest

from fastadapt.reproduce.compare import against, over_seeds
from fastadapt.reproduce.registry import PaperNumber


def test_one_seed_keeps_its_interval_over_test_episodes() -> None:
    assert over_seeds([{"value": 0.9, "ci95": 0.01}]) == {
        "value": 0.9, "ci95": 0.01, "interval": "test episodes", "seeds": 1
    }


def test_several_seeds_get_a_student_t_interval_over_their_values() -> None:
    combined = over_seeds([{"value": 0.90, "ci95": 0.01}, {"value": 0.94, "ci95": 0.01}])
    assert combined["value"] == pytest.approx(0.92)
    # s = 0.02 * sqrt(2) = 0.028284; t(0.975, 1 dof) = 12.706; half-width = 12.706 * s / sqrt(2) = 0.25412
    assert combined["ci95"] == pytest.approx(12.706 * 0.02 * math.sqrt(2) / math.sqrt(2))
    three = over_seeds([{"value": v, "ci95": 0.0} for v in (1.0, 2.0, 3.0)])
    assert three["ci95"] == pytest.approx(4.303 * 1.0 / math.sqrt(3)) and three["interval"] == "t over 3 seeds"


@pytest.mark.parametrize(
    "ours, paper, gap, overlap",
    [
        ({"value": 0.97, "ci95": 0.01}, PaperNumber(0.987, 0.004), -0.017, False),  # [0.96, 0.98] vs [0.983, 0.991]
        ({"value": 0.98, "ci95": 0.01}, PaperNumber(0.987, 0.004), -0.007, True),
        ({"value": 0.98, "ci95": 0.005}, PaperNumber(0.988, None), -0.008, False),  # a point outside [0.975, 0.985]
        ({"value": 0.985, "ci95": 0.005}, PaperNumber(0.988, None), -0.003, True),
    ],
)
def test_gap_and_overlap(ours: dict, paper: PaperNumber, gap: float, overlap: bool) -> None:
    result = against(ours, paper)
    assert result["gap"] == pytest.approx(gap) and result["overlap"] is overlap


def test_no_paper_number_means_no_gap() -> None:
    assert against({"value": 0.5, "ci95": 0.1}, None) == {"gap": None, "overlap": None}
