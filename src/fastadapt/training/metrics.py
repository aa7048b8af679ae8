"""The train records of ``metrics.jsonl``: the means of the metrics over the meta-updates since the last one."""

from __future__ import annotations

from typing import Any


class MetricWindow:
    """The metrics of the meta-updates since the last train record; ``close`` takes their means and starts anew."""

    def __init__(self) -> None:
        self._values: dict[str, list[float]] = {}
        self.means: dict[str, float] = {}  # those of the last closed window

    def add(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._values.setdefault(key, []).append(value)

    def close(self) -> dict[str, float]:
        self.means = {key: sum(values) / len(values) for key, values in self._values.items()}
        self._values = {}
        return self.means


def train_record(
    step: int, means: dict[str, float], lr: float | None, elapsed_s: float, skipped: int
) -> dict[str, Any]:
    """The record of the meta-updates up to ``step``; ``lr`` appears unless the learner has none (meta-RL's own
    outer update) and ``skipped`` (non-finite batches) once there are any."""
    record: dict[str, Any] = {"step": step, "kind": "train", **means}
    if lr is not None:
        record["lr"] = lr
    record["elapsed_s"] = elapsed_s
    return {**record, "skipped": skipped} if skipped else record
