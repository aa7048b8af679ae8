"""Validation records and best-state selection: which validation was best, and the model's state then; which
were the best few (for a top-k ensemble)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch

from fastadapt.errors import CheckpointError, ConfigError
from fastadapt.evaluate import EvalResult, higher_is_better


def validation_record(result: EvalResult, step: int) -> dict[str, Any]:
    """The ``metrics.jsonl`` record of a validation at ``step``."""
    return {"step": step, "kind": "val", f"val_{result.metric}": result.mean, "val_ci95": result.ci95,
            "val_loss": result.loss}


Selection = Literal["metric", "loss"]  # what makes one validation better than another
SELECTIONS: tuple[str, ...] = get_args(Selection)


def check_selection(select: str) -> None:
    """Refuse, in one line, a validation ranking rule that is not one of ``SELECTIONS``."""
    if select not in SELECTIONS:
        raise ConfigError(f"select must be one of {', '.join(SELECTIONS)}, got {select!r}")


def score(result: EvalResult, select: str = "metric") -> float:
    """A validation result as a number that is higher when better: its task metric, or (``select="loss"``, Snell et
    al.'s early stopping) its negated query loss."""
    return _score(result.metric, result.mean, result.loss, select)


def _score(metric: str, value: float, loss: float, select: str) -> float:
    check_selection(select)
    if select == "loss":
        return -loss
    return value if higher_is_better(metric) else -value


@dataclass
class Best:
    """The best validation so far (``record``: its step, score and result) and a copy of the model's state then;
    ``select`` is what ranks validations (see ``score``). A resumed record is scored again from its result under
    ``select``, so it compares whatever rule wrote it; one whose score is not a number is no best."""

    record: dict[str, Any] | None = None
    state: dict[str, torch.Tensor] | None = None
    select: str = "metric"

    def __post_init__(self) -> None:
        check_selection(self.select)
        if self.record is not None:
            metric, loss = self.record["metric"], self.record["loss"]
            self.record = {**self.record, "score": _score(metric, self.record[metric], loss, self.select)}
        if self.record is not None and math.isnan(self.record["score"]):
            self.record, self.state = None, None

    @property
    def step(self) -> int | None:
        return self.record["step"] if self.record is not None else None

    def consider(self, result: EvalResult, step: int, model: torch.nn.Module) -> bool:
        """Keep ``result`` and ``model``'s state if they beat the best so far (a NaN never does); say whether."""
        new = score(result, self.select)
        if math.isnan(new) or (self.record is not None and not new > self.record["score"]):
            return False
        self.record = {"step": step, "score": new, **result.to_dict()}
        self.state = copy.deepcopy(model.state_dict())
        return True


@dataclass
class Ranking:
    """The ``keep`` best validations so far (``entries``: their step and score), best first; of equal scores the
    earlier ranks first; ``select`` is what ranks them (see ``score``), and resumed entries ranked by another rule
    are refused (theirs is only a score: it cannot be scored again)."""

    keep: int = 1
    entries: list[dict[str, Any]] = field(default_factory=list)
    select: str = "metric"

    def __post_init__(self) -> None:
        check_selection(self.select)
        ranked_by = {entry.get("select", "metric") for entry in self.entries}  # before train.select: by the metric
        if ranked_by - {self.select}:
            raise CheckpointError(f"this run ranked its best validations by the {ranked_by.pop()} and cannot go on "
                                  f"by the {self.select}: resume it with that train.select")

    @property
    def steps(self) -> list[int]:
        return [entry["step"] for entry in self.entries]

    def offer(self, result: EvalResult, step: int) -> bool:
        """Rank the validation at ``step``; say whether it is among the ``keep`` best (a NaN never is)."""
        new = score(result, self.select)
        if math.isnan(new):
            return False
        position = next((i for i, entry in enumerate(self.entries) if new > entry["score"]), len(self.entries))
        self.entries.insert(position, {"step": step, "score": new, "select": self.select})
        del self.entries[self.keep:]
        return position < self.keep
