"""Validation records and best-state selection: which validation was best, and the model's state then."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from fastadapt.evaluate import EvalResult, higher_is_better


def validation_record(result: EvalResult, step: int) -> dict[str, Any]:
    """The ``metrics.jsonl`` record of a validation at ``step``."""
    return {"step": step, "kind": "val", f"val_{result.metric}": result.mean, "val_ci95": result.ci95,
            "val_loss": result.loss}


def score(result: EvalResult) -> float:
    """A validation result as a number that is higher when better."""
    return result.mean if higher_is_better(result.metric) else -result.mean


@dataclass
class Best:
    """The best validation so far (``record``: its step, score and result) and a copy of the model's state then."""

    record: dict[str, Any] | None = None
    state: dict[str, torch.Tensor] | None = None

    @property
    def step(self) -> int | None:
        return self.record["step"] if self.record is not None else None

    def consider(self, result: EvalResult, step: int, model: torch.nn.Module) -> bool:
        """Keep ``result`` and ``model``'s state if they beat the best so far (a NaN never does); say whether."""
        new = score(result)
        if self.record is not None and not new > self.record["score"]:
            return False
        self.record = {"step": step, "score": new, **result.to_dict()}
        self.state = copy.deepcopy(model.state_dict())
        return True
