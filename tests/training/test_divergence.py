"""The divergence policy: finite batches pass, non-finite ones stop the run or are skipped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastadapt.errors import DivergenceError
from fastadapt.training.divergence import DivergencePolicy, nonfinite_gradients


def _model(grad: float) -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    model[1].weight.grad.fill_(grad)  # type: ignore[union-attr]
    return model


def test_finite_loss_and_gradients_pass() -> None:
    policy = DivergencePolicy(skip=False)
    assert policy.admit(0.5, _model(1.0), step=1, last=None) and policy.skipped == 0


def test_a_nonfinite_loss_stops_the_run_naming_the_step_and_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(DivergenceError, match="at step 7: the meta-loss is nan; no checkpoint was written yet"):
        DivergencePolicy(skip=False).admit(float("nan"), _model(1.0), step=7, last=tmp_path / "last.pt")
    (tmp_path / "last.pt").write_bytes(b"")
    with pytest.raises(DivergenceError, match="the last good checkpoint is .*last.pt"):
        DivergencePolicy(skip=False).admit(float("inf"), _model(1.0), step=7, last=tmp_path / "last.pt")


def test_a_nonfinite_gradient_of_a_finite_loss_names_the_tensor() -> None:
    model = _model(float("inf"))
    assert nonfinite_gradients(model) == ["1.weight"]
    message = r"meta-loss is 0.5 but its gradient is not finite in 1 tensors \(e\.g\. 1\.weight\)"
    with pytest.raises(DivergenceError, match=message):
        DivergencePolicy(skip=False).admit(0.5, model, step=2, last=None)


def test_skipping_drops_the_gradients_and_counts() -> None:
    policy, model = DivergencePolicy(skip=True), _model(float("nan"))
    assert not policy.admit(0.5, model, step=1, last=None)
    assert not policy.admit(float("nan"), _model(1.0), step=2, last=None)
    assert policy.skipped == 2 and all(p.grad is None for p in model.parameters())
