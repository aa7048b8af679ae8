"""Runs survive SIGKILL at any moment, and torn writes never replace a good checkpoint."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import run_records

from fastadapt.checkpoint import load_checkpoint
from fastadapt.errors import CheckpointError
from fastadapt.logs import read_records
from fastadapt.storage import atomic_torch_save

STEPS = 60
KILLS = 4
RUN = [
    "--preset", "maml-glyphs-5w1s", "--threads", "1", "--no-progress",
    "model.hidden=8", "task.queries=2", "train_task.queries=2", f"train.steps={STEPS}", "train.meta_batch=2",
    "train.val_every=20", "train.val_episodes=10", "train.checkpoint_every=1", "train.log_every=1", "test.episodes=10",
    "deterministic=true",
]


def _train(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastadapt", "train", *args]


def _logged_step(run: Path) -> int:
    """The step of the last whole record the running process has logged (0 before any)."""
    log = run / "metrics.jsonl"
    records = read_records(log) if log.is_file() else []
    return records[-1]["step"] if records else 0


def test_sigkill_at_random_moments_then_resume_equals_the_uninterrupted_run(glyphs_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "FASTADAPT_DATA": str(glyphs_root)}
    whole = _train("--run-dir", str(tmp_path / "whole"), *RUN)
    subprocess.run(whole, env=env, check=True, capture_output=True, timeout=600)
    reference = load_checkpoint(tmp_path / "whole" / "last.pt")
    assert reference["step"] == STEPS

    run = tmp_path / "killed"
    rng = random.Random(int(os.environ.get("FASTADAPT_KILL_SEED", "0")))
    targets = sorted(rng.sample(range(3, STEPS - 3), KILLS))
    killed_at = []
    resume = ["--resume", str(run), "--no-progress", "--threads", "1"]
    for number, target in enumerate(targets):
        args = ["--run-dir", str(run), *RUN] if number == 0 else resume
        process = subprocess.Popen(_train(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while _logged_step(run) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.03))  # anywhere inside the next step, checkpoint writing included
        assert process.poll() is None, "the run ended before it was killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at.append(_logged_step(run))
    finish = subprocess.run(_train(*resume), env=env, capture_output=True, text=True, timeout=600)
    assert finish.returncode == 0, finish.stderr
    resumed = load_checkpoint(run / "last.pt")
    assert resumed["step"] == STEPS and len(killed_at) == KILLS
    for key, value in reference["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    for key, value in reference["optimizer"]["state"].items():
        assert all(torch.equal(v, resumed["optimizer"]["state"][key][k]) for k, v in value.items())
    whole_log, killed_log = run_records(tmp_path / "whole"), run_records(run)
    assert [(r["step"], r["kind"]) for r in killed_log] == [(r["step"], r["kind"]) for r in whole_log]
    assert not list(run.glob(".*.tmp")), "a temporary file was left behind"


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "last.pt"
    atomic_torch_save({"step": 1}, target)

    def torn_save(obj: object, handle: object) -> None:
        handle.write(b"PK\x03\x04 half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class _Payload:
    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {os.environ.get('PAYLOAD_MARKER', '/nonexistent')}",))


def test_a_malicious_checkpoint_is_refused_without_running_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PAYLOAD_MARKER", str(marker))
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"format": "fastadapt-checkpoint", "model": _Payload()}, handle)
    with pytest.raises(CheckpointError, match="not a readable fastadapt checkpoint"):
        load_checkpoint(evil)
    torch.save({"format": "fastadapt-checkpoint", "schema": 1, "model": _Payload()}, tmp_path / "evil2.pt")
    with pytest.raises(CheckpointError, match="not a readable fastadapt checkpoint"):
        load_checkpoint(tmp_path / "evil2.pt")
    assert not marker.exists()


def test_foreign_and_incompatible_checkpoints_say_what_they_are(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a fastadapt checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    torch.save({"format": "fastadapt-checkpoint", "schema": 99, "fastadapt_version": "9.0"}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="schema 99 .*fastadapt 9.0.*reads schema 1"):
        load_checkpoint(tmp_path / "future.pt")
    protonet = {
        "format": "fastadapt-checkpoint", "schema": 1, "algorithm": "protonet", "step": 7, "fastadapt_version": "0.1.0"
    }
    torch.save(protonet, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="is a protonet checkpoint .*cannot be loaded into maml"):
        load_checkpoint(tmp_path / "p.pt", expect="maml")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "p.pt").read_bytes()[:50])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "truncated.pt")
