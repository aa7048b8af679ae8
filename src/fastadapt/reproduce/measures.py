"""One number of a reproduction's report, taken on a trained learner: read from the run's own test where that
answers it, else kept in the run folder from an earlier call, else a new test (which is then kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastadapt.config import RunConfig, merge, resolve, unflatten
from fastadapt.experiment import adaptation_test, is_rl, test_learner
from fastadapt.reproduce.kept import keep_measure, kept_measure, measure_key
from fastadapt.reproduce.registry import Measure


def _from_result(result: dict[str, Any], item: Measure) -> dict[str, Any] | None:
    """The measure as the run's own test answers it: that test when nothing changes; for RL a point of the
    run's adaptation curve when only the number of steps changes; else None."""
    metric = result["test"]["metric"]
    if not item.set:
        test = result["test"]
        return {"value": test[metric], "ci95": test["ci95"], "episodes": test["episodes"]}
    curve = result.get("adaptation")
    steps = item.set.get("test.inner_steps")
    if curve and set(item.set) == {"test.inner_steps"} and steps is not None and steps < len(curve):
        point = curve[steps]
        return {"value": point[metric], "ci95": point["ci95"], "episodes": point["episodes"]}
    return None


def measure(
    learner: Any, config: RunConfig, item: Measure, result: dict[str, Any] | None = None, split: str = "test",
    run_dir: Path | None = None,
) -> dict[str, Any]:
    """One measure on one trained learner: read from the run's ``result`` where it answers it, else a new
    test on ``split`` with the measure's ``set`` applied (for RL, the return after ``test.inner_steps`` steps),
    which ``run_dir`` (where given) keeps for the same weights and settings and gives back on the next call, marked
    ``"kept": true`` so that a report says which of its numbers an earlier call took."""
    if result is not None:
        own = _from_result(result, item)
        if own is not None:
            return own
    changed = resolve(merge(config.to_dict(), unflatten(item.set))) if item.set else config
    if run_dir is None:
        return _tested(learner, changed, split)
    key = measure_key(learner, changed, split)
    kept = kept_measure(run_dir, key)
    if kept is not None:
        return {**kept, "kept": True}
    taken = _tested(learner, changed, split)
    keep_measure(run_dir, key, taken)
    return taken


def _tested(learner: Any, config: RunConfig, split: str) -> dict[str, Any]:
    """A new test of ``learner`` under ``config`` on ``split`` (for RL, the return after its last step)."""
    tested = adaptation_test(learner, config, split=split)[-1] if is_rl(config) else (
        test_learner(learner, config, split=split))
    return {"value": tested.mean, "ci95": tested.ci95, "episodes": tested.episodes}
