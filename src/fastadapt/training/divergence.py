"""The divergence policy: what a non-finite meta-loss or gradient does to the run."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from fastadapt.errors import DivergenceError


class DivergencePolicy:
    """Stops the run at a non-finite meta-loss or gradient with ``DivergenceError``, or with ``skip`` drops that
    meta-batch's gradients (and counts it in ``skipped``)."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.skipped = 0

    def admit(self, loss: float, model: torch.nn.Module, step: int, last: Path | None) -> bool:
        """Whether the gradients of meta-update ``step`` may be applied; ``last`` is the checkpoint to point to.
        A skipped batch's gradients are dropped."""
        if self.passes(loss, nonfinite_gradients(model), step, last):
            return True
        model.zero_grad(set_to_none=True)
        return False

    def passes(self, loss: float, bad: list[str], step: int, last: Path | None) -> bool:
        """Whether meta-update ``step``, of meta-loss ``loss`` and with non-finite gradients in the tensors ``bad``,
        is sound; if not, stop the run or count it as skipped (its caller undoes it)."""
        if math.isfinite(loss) and not bad:
            return True
        if not self.skip:
            raise divergence_error(loss, bad, step, last)
        self.skipped += 1
        return False


def nonfinite_gradients(model: torch.nn.Module) -> list[str]:
    """The names of the parameters whose gradient holds a NaN or an infinity."""
    named = model.named_parameters()
    return [name for name, p in named if p.grad is not None and not bool(torch.isfinite(p.grad).all())]


def divergence_error(loss: float, bad: list[str], step: int, last: Path | None) -> DivergenceError:
    """The error that says what diverged at ``step``, where the last good state is and what to change."""
    what = f"the meta-loss is {loss:.4g}"
    if math.isfinite(loss):
        what += f" but its gradient is not finite in {len(bad)} tensors (e.g. {bad[0]})"
    saved = last is not None and last.is_file()
    where = f"the last good checkpoint is {last}" if saved else "no checkpoint was written yet"
    return DivergenceError(
        f"meta-training diverged at step {step}: {what}; "
        f"{where}. Lower the learning rates or clip gradients (grad_clip), or skip such batches (skip_nonfinite)"
    )
