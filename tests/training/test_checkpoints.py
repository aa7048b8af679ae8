"""last.pt and best.pt: their exact keys, restoring every state from them, and starting or continuing a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import fastadapt as fa
from fastadapt.checkpoint import load_checkpoint, rng_state, save_checkpoint
from fastadapt.errors import CheckpointError
from fastadapt.training.checkpoints import Checkpoints, Standing, TrainingState, open_run
from fastadapt.training.folder import RunFolder
from fastadapt.training.schedule import make_scheduler

KEYS = ["format", "schema", "fastadapt_version", "algorithm", "config", "metadata", "model", "optimizer", "scheduler",
        "sampler", "rng", "step", "elapsed_s", "best", "top", "path"]


def _state(seed: int) -> TrainingState:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    return TrainingState("maml", model, optimizer, make_scheduler(optimizer, "cosine", 10), fa.SinusoidTasks(seed=seed))


def _train_a_little(state: TrainingState) -> None:
    for _ in range(2):
        state.sampler.sample(2)
        state.model(torch.randn(4, 3)).sum().backward()
        state.optimizer.step()
        state.scheduler.step()


def test_a_checkpoint_holds_exactly_these_keys(tmp_path: Path) -> None:
    state = _state(0)
    Checkpoints(RunFolder(tmp_path), state, {"seed": 0}, {"pixel_mean": None}).save("last.pt", Standing(3, 1.5, None))
    saved = load_checkpoint(tmp_path / "last.pt", expect="maml")
    assert list(saved) == KEYS
    assert (saved["step"], saved["elapsed_s"], saved["best"], saved["config"]) == (3, 1.5, None, {"seed": 0})


def test_restoring_continues_exactly_where_the_run_was(tmp_path: Path) -> None:
    state = _state(0)
    _train_a_little(state)
    best = {"step": 2, "score": 0.5}
    Checkpoints(RunFolder(tmp_path), state, None, {}).save("last.pt", Standing(2, 4.0, best))
    expected = state.sampler.sample(2).query_x, torch.rand(3)
    resumed = _state(1)
    assert Checkpoints(RunFolder(tmp_path), resumed, None, {}).restore() == Standing(2, 4.0, best)
    assert torch.equal(resumed.sampler.sample(2).query_x, expected[0]) and torch.equal(torch.rand(3), expected[1])
    assert torch.equal(resumed.model.weight, state.model.weight)
    assert resumed.scheduler.get_last_lr() == state.scheduler.get_last_lr()
    resumed_state, state_state = resumed.optimizer.state_dict()["state"], state.optimizer.state_dict()["state"]
    for a, b in zip(resumed_state.values(), state_state.values(), strict=True):
        assert all(torch.equal(a[key], b[key]) for key in b)


def test_a_checkpoint_written_by_the_earlier_trainer_still_loads(tmp_path: Path) -> None:
    """The keys as ``meta_train`` wrote them before it was split into parts."""
    old = _state(0)
    save_checkpoint(tmp_path / "last.pt", algorithm="maml", config=None, metadata={}, model=old.model.state_dict(),
                    optimizer=old.optimizer.state_dict(), scheduler=old.scheduler.state_dict(),
                    sampler=old.sampler.state_dict(), rng=rng_state(), step=5, elapsed_s=2.0, best=None)
    new = _state(1)
    assert Checkpoints(RunFolder(tmp_path), new, None, {}).restore() == Standing(5, 2.0, None)
    assert torch.equal(new.model.weight, old.model.weight)


def test_a_state_without_an_optimizer_saves_none_and_ignores_a_saved_one(tmp_path: Path) -> None:
    """Learners that make their own outer update (meta-RL) have no optimizer: their checkpoints hold None, and the
    optimizer and schedule states of a checkpoint from an earlier version (SGD for RL) are ignored."""
    old = _state(0)
    _train_a_little(old)
    Checkpoints(RunFolder(tmp_path), old, None, {}).save("last.pt", Standing(2, 1.0))
    new = _state(1)
    own = TrainingState("maml", new.model, None, None, new.sampler)
    assert Checkpoints(RunFolder(tmp_path), own, None, {}).restore() == Standing(2, 1.0)
    assert torch.equal(own.model.weight, old.model.weight)
    Checkpoints(RunFolder(tmp_path), own, None, {}).save("last.pt", Standing(3))
    saved = load_checkpoint(tmp_path / "last.pt")
    assert list(saved) == KEYS and saved["optimizer"] is None and saved["scheduler"] is None


def test_no_checkpoint_another_algorithm_and_readers(tmp_path: Path) -> None:
    state = _state(0)
    assert Checkpoints(RunFolder(tmp_path), state, None, {}).restore() == Standing()
    Checkpoints(RunFolder(tmp_path, writer=False), state, None, {}).save("last.pt", Standing(1))
    assert not (tmp_path / "last.pt").exists()  # only rank 0 writes
    Checkpoints(RunFolder(tmp_path), state, None, {}).save("best.pt", Standing(1))
    assert Checkpoints(RunFolder(tmp_path), _state(1), None, {}).best_model() is not None
    state.algorithm = "protonet"
    Checkpoints(RunFolder(tmp_path), state, None, {}).save("last.pt", Standing(1))
    with pytest.raises(CheckpointError, match="is a protonet checkpoint"):
        Checkpoints(RunFolder(tmp_path), _state(1), None, {}).restore()
    memory = Checkpoints(RunFolder(None), state, None, {})
    memory.save("last.pt", Standing(1))
    assert memory.restore() == Standing() and memory.best_model() is None


def test_open_run_starts_or_continues(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    checkpoints = Checkpoints(folder, _state(0), {"seed": 0}, {})
    assert open_run(folder, checkpoints, resume=False, config={"seed": 0}) == Standing()
    assert (tmp_path / "config.yaml").is_file()
    checkpoints.save("last.pt", Standing(2, 1.0))
    folder.log({"step": 2, "kind": "train"})
    folder.log({"step": 3, "kind": "train"})
    with pytest.raises(CheckpointError, match="already holds a run"):
        open_run(folder, checkpoints, resume=False, config=None)
    assert open_run(folder, Checkpoints(folder, _state(1), None, {}), resume=True, config=None) == Standing(2, 1.0)
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [2]
