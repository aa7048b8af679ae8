"""Our number against the paper's: the estimate over seeds, the gap, and whether the intervals meet."""

from __future__ import annotations

import math
from typing import Any

from fastadapt.reproduce.registry import PaperNumber

# Student-t 0.975 quantiles by degrees of freedom (a constant table: numpy and torch have no t
# quantile function, and a seed count above 30 is served by the normal 1.96).
T975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
    21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042,
}


def over_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine one measure's per-seed results (``value``, ``ci95`` over test episodes).

    One seed: its value and its interval over the test episodes. Several: the mean of the seeds'
    values with the Student-t interval over seeds, which holds the variation between training runs
    as well as the test episodes' (the same episodes test every seed).
    """
    values = [r["value"] for r in per_seed]
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return {"value": mean, "ci95": per_seed[0]["ci95"], "interval": "test episodes", "seeds": 1}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    ci95 = T975.get(n - 1, 1.96) * std / math.sqrt(n)
    return {"value": mean, "ci95": ci95, "interval": f"t over {n} seeds", "seeds": n}


def against(ours: dict[str, Any], paper: PaperNumber | None) -> dict[str, Any]:
    """The gap (ours minus the paper's) and whether the paper's interval (its point where it gives
    none) meets ours."""
    if paper is None:
        return {"gap": None, "overlap": None}
    low, high = ours["value"] - ours["ci95"], ours["value"] + ours["ci95"]
    paper_ci = paper.ci95 or 0.0
    overlap = paper.value - paper_ci <= high and low <= paper.value + paper_ci
    return {"gap": ours["value"] - paper.value, "overlap": overlap}
