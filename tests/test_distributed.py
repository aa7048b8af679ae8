"""torchrun with 2 gloo processes on CPU: the same updates as one process, rank 0 writes, resume works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import random_dataset, run_records

import fastadapt as fa
from fastadapt.checkpoint import load_checkpoint
from fastadapt.distributed import World
from fastadapt.errors import ConfigError
from fastadapt.logs import read_records

STEPS = 6
RUN = [
    "--preset", "maml-glyphs-5w1s", "--no-progress", "--threads", "1", "model.hidden=8", "task.queries=2",
    "train_task.queries=2", f"train.steps={STEPS}", "train.meta_batch=4", "train.val_every=3", "train.val_episodes=4",
    "train.checkpoint_every=1", "train.log_every=1", "test.episodes=4", "train.optimizer=sgd", "train.lr=0.1",
]


def _single(run_dir: Path, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "fastadapt", "train", "--run-dir", str(run_dir), *RUN], env=env, check=True,
                   capture_output=True, timeout=600)


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "fastadapt", "train", *args]


def _assert_same_parameters(a: Path, b: Path) -> None:
    one, two = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert one["step"] == two["step"] == STEPS
    for key, value in one["model"].items():
        torch.testing.assert_close(two["model"][key], value, rtol=0, atol=1e-6)


@pytest.fixture
def env(glyphs_root: Path) -> dict[str, str]:
    return {**os.environ, "FASTADAPT_DATA": str(glyphs_root), "OMP_NUM_THREADS": "1"}


def test_two_processes_make_the_updates_of_one(env: dict[str, str], tmp_path: Path) -> None:
    _single(tmp_path / "one", env)
    command = _torchrun("--run-dir", str(tmp_path / "two"), *RUN)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    _assert_same_parameters(tmp_path / "one", tmp_path / "two")
    # rank 0 alone writes: one log line per step, validations as in the single run
    one, two = run_records(tmp_path / "one"), run_records(tmp_path / "two")
    assert [(r["step"], r["kind"]) for r in two] == [(r["step"], r["kind"]) for r in one]
    for a, b in zip(one, two, strict=True):  # the logged loss is the mean over both processes' tasks
        if a["kind"] == "train":
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    assert json.loads((tmp_path / "two" / "result.json").read_text())["processes"] == 2
    assert done.stdout.count("test accuracy") == 1


def test_a_killed_distributed_run_resumes_to_the_same_parameters(env: dict[str, str], tmp_path: Path) -> None:
    _single(tmp_path / "one", env)
    run = tmp_path / "two"
    process = subprocess.Popen(_torchrun("--run-dir", str(run), *RUN), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        log = run / "metrics.jsonl"
        if log.is_file() and len(read_records(log)) >= 3:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it was killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert load_checkpoint(run / "last.pt")["step"] < STEPS
    resume = _torchrun("--resume", str(run), "--no-progress", "--threads", "1")
    done = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    _assert_same_parameters(tmp_path / "one", run)


def test_a_meta_batch_splits_evenly_or_is_refused() -> None:
    batch = fa.FewShotTasks(random_dataset(), 3, 1, 1, seed=0).sample(6)
    shards = [World(rank, 3).shard(batch) for rank in range(3)]
    assert all(len(s) == 2 for s in shards)
    assert torch.equal(torch.cat([s.support_x for s in shards]), batch.support_x)
    with pytest.raises(ConfigError, match="meta_batch=6 does not split evenly over 4 processes"):
        World(1, 4).shard(batch)
    assert World().shard(batch) is batch
