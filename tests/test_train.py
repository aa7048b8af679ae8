"""The meta-training loop: exact resumption, best checkpoint, logs and divergence."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml
from helpers import random_dataset

import fastadapt as fa
from fastadapt.checkpoint import load_checkpoint
from fastadapt.errors import CheckpointError, ConfigError, DivergenceError
from fastadapt.logs import read_records
from fastadapt.train import TrainConfig, TrainingInterrupted, make_scheduler, meta_train


def _setup(seed: int = 0) -> tuple[fa.MAML, fa.FewShotTasks, fa.FewShotTasks]:
    torch.manual_seed(seed)
    learner = fa.MAML(fa.nn.Conv4(1, 3, hidden=4, image_size=16), inner_lr=0.3, inner_steps=1)
    dataset = random_dataset(classes=10, per_class=5, size=16)
    return learner, fa.FewShotTasks(dataset, 3, 1, 2, seed=seed), fa.FewShotTasks(dataset, 3, 1, 2, seed=seed + 1)


def _train(run_dir: Path | None, steps: int = 6, **kwargs) -> fa.MAML:
    learner, tasks, val = _setup()
    meta_train(learner, tasks, steps, meta_batch=2, val_tasks=val, val_every=2, val_episodes=4, run_dir=run_dir,
               log_every=1, progress=False, restore_best=False, schedule="cosine", **kwargs)
    return learner


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_after_the_step_and_resume_equals_the_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    reference = _train(tmp_path / "whole", keep_best=2)
    calls = {"n": 0}
    original = fa.FewShotTasks.sample

    def signal_during_step_4(self: fa.FewShotTasks, n: int = 1) -> fa.TaskBatch:
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signum)
        return original(self, n)

    monkeypatch.setattr(fa.FewShotTasks, "sample", signal_during_step_4)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted):
        _train(tmp_path / "split", keep_best=2)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers are restored
    assert load_checkpoint(tmp_path / "split" / "last.pt")["step"] == 4  # step 4 finished, then saved
    monkeypatch.setattr(fa.FewShotTasks, "sample", original)
    torch.manual_seed(123)  # resuming restores the RNG states: this must not matter
    resumed = _train(tmp_path / "split", resume=True, keep_best=2)
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    log = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    whole = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [r["step"] for r in whole]
    assert [r["loss"] for r in log if r["kind"] == "train"] == [r["loss"] for r in whole if r["kind"] == "train"]
    assert sorted(os.listdir(tmp_path / "split" / "top")) == sorted(os.listdir(tmp_path / "whole" / "top"))


def test_the_checkpoints_of_the_best_validations_are_kept(tmp_path: Path) -> None:
    _train(tmp_path, steps=10, keep_best=3)
    validations = [r for r in read_records(tmp_path / "metrics.jsonl") if r["kind"] == "val"]
    best = sorted(validations, key=lambda r: -r["val_accuracy"])[:3]  # stable: of equals the earlier first
    ranked = [entry["step"] for entry in load_checkpoint(tmp_path / "last.pt")["top"]]
    assert ranked == [r["step"] for r in best] and len(validations) == 5
    assert sorted(os.listdir(tmp_path / "top")) == sorted(f"step-{step}.pt" for step in ranked)
    for step in ranked:
        assert load_checkpoint(tmp_path / "top" / f"step-{step}.pt")["step"] == step
    _train(tmp_path / "one", steps=4)  # the default keeps best.pt alone
    assert not (tmp_path / "one" / "top").exists() and load_checkpoint(tmp_path / "one" / "last.pt")["top"] == []


def _custom_handler(signum: int, frame: object) -> None:
    raise AssertionError("the run's own handler should have been in place")


@pytest.mark.parametrize("previous", [_custom_handler, signal.SIG_IGN], ids=["custom", "ignored"])
def test_a_run_puts_back_the_signal_handlers_it_found(previous: object) -> None:
    originals = {sig: signal.signal(sig, previous) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _train(None, steps=2)
        assert signal.getsignal(signal.SIGINT) is previous and signal.getsignal(signal.SIGTERM) is previous
    finally:
        for sig, handler in originals.items():
            signal.signal(sig, handler)


def test_run_folder_holds_config_log_and_checkpoints(tmp_path: Path) -> None:
    learner, tasks, val = _setup()
    result = meta_train(learner, tasks, 4, meta_batch=2, val_tasks=val, val_every=2, val_episodes=6, run_dir=tmp_path,
                        config={"note": "kept"}, log_every=2, progress=False)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == {"note": "kept"}
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["kind"]) for r in records] == [(2, "train"), (2, "val"), (4, "train"), (4, "val")]
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["step"] == result.best_step and best["algorithm"] == "maml"
    assert result.best_validation["accuracy"] == max(r["val_accuracy"] for r in records if r["kind"] == "val")
    # restore_best: the learner ends with the best validation state
    for key, value in learner.state_dict().items():
        assert torch.equal(value, best["model"][key])


def test_nonfinite_loss_stops_with_the_step_and_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    learner, tasks, _ = _setup()
    original = fa.FewShotTasks.sample
    calls = {"n": 0}

    def nan_at_step_3(self: fa.FewShotTasks, n: int = 1) -> fa.TaskBatch:
        calls["n"] += 1
        batch = original(self, n)
        if calls["n"] == 3:
            batch.query_x.fill_(float("nan"))
        return batch

    monkeypatch.setattr(fa.FewShotTasks, "sample", nan_at_step_3)
    with pytest.raises(DivergenceError, match=r"diverged at step 3: .* last good checkpoint is .*last.pt"):
        meta_train(learner, tasks, 4, meta_batch=1, run_dir=tmp_path, val_every=1, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2
    assert all(torch.isfinite(p).all() for p in learner.parameters())


def test_nonfinite_gradient_of_a_finite_loss_stops_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    learner, tasks, _ = _setup()
    original = fa.MAML.task_objective

    def nan_gradient_at_step_2(self: fa.MAML, *args: object) -> tuple[torch.Tensor, torch.Tensor]:
        objective, outputs = original(self, *args)
        if self.step == 1:  # sqrt at 0 has an infinite slope: the value stays finite, the gradient is NaN
            weight = self.model.head.weight
            objective = objective + torch.sqrt((weight - weight.detach()).abs().sum())
        return objective, outputs

    monkeypatch.setattr(fa.MAML, "task_objective", nan_gradient_at_step_2)
    monkeypatch.setattr(fa.MAML, "set_step", lambda self, step: setattr(self, "step", step))
    message = (r"diverged at step 2: the meta-loss is [\d.]+ but its gradient is not finite in 1 tensors "
               r"\(e\.g\. model\.head\.weight\)")
    with pytest.raises(DivergenceError, match=message):
        meta_train(learner, tasks, 4, meta_batch=1, run_dir=tmp_path, val_every=1, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 1
    assert all(torch.isfinite(p).all() for p in learner.parameters())


def test_nonfinite_batches_can_be_skipped(tmp_path: Path) -> None:
    learner, tasks, _ = _setup()
    with torch.no_grad():
        next(learner.parameters()).fill_(float("nan"))
    before = [p.detach().clone() for p in learner.parameters()]
    meta_train(learner, tasks, 3, meta_batch=1, run_dir=tmp_path, skip_nonfinite=True, log_every=3, progress=False)
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert record["skipped"] == 3
    for p, b in zip(learner.parameters(), before, strict=True):
        assert torch.equal(p.isnan(), b.isnan())


def test_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    learner, tasks, _ = _setup()
    with pytest.raises(CheckpointError, match="there is no run in"):
        meta_train(learner, tasks, 2, run_dir=tmp_path, resume=True, progress=False)


def test_a_run_folder_is_never_overwritten(tmp_path: Path) -> None:
    learner, tasks, _ = _setup()
    meta_train(learner, tasks, 2, meta_batch=1, run_dir=tmp_path, progress=False)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a run"):
        meta_train(learner, tasks, 2, meta_batch=1, run_dir=tmp_path, progress=False)
    assert (tmp_path / "last.pt").read_bytes() == before


def test_resume_before_the_first_checkpoint_starts_over(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 10, "kind": "train", "loss": 1.0}\n{"step": 20, "kind": "tr')
    learner, tasks, _ = _setup()
    meta_train(learner, tasks, 2, meta_batch=1, run_dir=tmp_path, resume=True, log_every=1, progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_resume_removes_every_write_a_kill_tore(tmp_path: Path) -> None:
    _train(tmp_path, steps=2)
    names = ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv", "config.yaml")
    torn = [tmp_path / f".{name}.x1y2z3.tmp" for name in names]
    for path in torn:
        path.write_bytes(b"half")
    _train(tmp_path, steps=4, resume=True)
    assert not list(tmp_path.glob(".*.tmp"))
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 4


def test_schedules() -> None:
    def lrs(schedule: str, **kw) -> list[float]:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        scheduler = make_scheduler(optimizer, schedule, 4, **kw)
        values = []
        for _ in range(4):
            values.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return values

    assert lrs("constant") == [1.0] * 4
    assert lrs("linear") == [1.0, 0.75, 0.5, 0.25]
    assert lrs("cosine") == pytest.approx([1.0, 0.8535534, 0.5, 0.1464466])
    assert lrs("step", decay_every=2, decay=0.5) == [1.0, 1.0, 0.5, 0.5]


def test_a_time_budget_ends_training_with_validation_and_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = {"t": 0.0}

    def fake_perf_counter() -> float:  # every reading of the clock is 10 s later
        clock["t"] += 10.0
        return clock["t"]

    monkeypatch.setattr("fastadapt.training.clock.perf_counter", fake_perf_counter)
    learner, tasks, val = _setup()
    result = meta_train(learner, tasks, 50, meta_batch=2, val_tasks=val, val_every=100, val_episodes=4,
                        run_dir=tmp_path, log_every=100, progress=False, max_minutes=1)
    assert 1 < result.steps < 50
    assert result.elapsed_s >= 60
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "val"] == [result.steps]
    assert load_checkpoint(tmp_path / "last.pt")["step"] == result.steps
    again = meta_train(*_setup()[:2], 50, meta_batch=2, run_dir=tmp_path, resume=True, progress=False, max_minutes=1)
    assert again.steps == result.steps  # the budget was spent: resuming trains no further


def test_settings_come_as_keywords_or_a_train_config() -> None:
    learner, tasks, _ = _setup()
    with pytest.raises(TypeError, match="unexpected keyword argument 'meta_bach'"):
        meta_train(learner, tasks, 2, meta_bach=2)
    with pytest.raises(ConfigError, match="meta_batch must be an integer >= 1, got 0"):
        meta_train(learner, tasks, 2, meta_batch=0)
    with pytest.raises(TypeError, match="missing 1 required argument: 'steps'"):
        meta_train(learner, tasks)
    settings = TrainConfig(steps=5, meta_batch=2, log_every=1, progress=False)
    assert meta_train(learner, tasks, train_config=settings).steps == 5
    result = meta_train(learner, tasks, 3, train_config=settings, max_minutes=60)  # steps and keywords win
    assert result.steps == 3
