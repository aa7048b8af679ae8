"""The reproduction figures drawn from their data."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

import fastadapt.reproduce.figures as figures


def _line(label: str, values: list[float], cis: list[float]) -> dict[str, Any]:
    rows = zip(figures.STEPS, values, cis, strict=True)
    points = [{"steps": k, "value": v, "ci95": c, "episodes": 600} for k, v, c in rows]
    return {"label": label, "points": points}


@pytest.mark.parametrize(("metric", "scale"), [("mse", "log"), ("accuracy", "linear")])
def test_an_error_is_drawn_on_a_log_axis_even_where_an_interval_reaches_below_zero(
    metric: str, scale: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[Figure] = []
    monkeypatch.setattr(figures, "save_figure", lambda figure, path: drawn.append(figure))
    diverging = _line("one task explodes", [3.0, 0.6, 0.7, 1.1, 11.0, 0.5], [0.2, 0.06, 0.2, 0.9, 19.0, 0.16])
    steady = _line("steady", [3.0, 0.8, 0.6, 0.5, 0.45, 0.42], [0.2, 0.07, 0.05, 0.05, 0.05, 0.04])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figures.draw_steps([diverging, steady], metric, Path("unused.png"))
    axis = drawn[0].axes[0]
    assert axis.get_yscale() == scale
    if scale == "log":  # every mean and the steady line's whole bars in view
        low, high = axis.get_ylim()
        assert low < 0.38 and high > 11.0 and "log" in axis.get_ylabel()
