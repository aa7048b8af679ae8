"""Meta-training: sample a batch of tasks, take the meta-objective, update; validate and checkpoint.

One loop serves every algorithm. A run folder holds ``config.yaml``, ``metrics.jsonl`` (and its
``metrics.csv``) and the checkpoints ``last.pt`` (to resume exactly) and ``best.pt`` (best validation).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from fastadapt.algorithms.base import MetaLearner
from fastadapt.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from fastadapt.distributed import World
from fastadapt.errors import CheckpointError, ConfigError, DivergenceError
from fastadapt.evaluate import meta_test
from fastadapt.logs import TensorBoard, read_records, write_csv
from fastadapt.storage import atomic_write_text
from fastadapt.tasks import TaskDistribution

SCHEDULES = ("constant", "cosine", "linear", "step")


def make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, steps: int, decay_every: int = 0, decay: float = 0.5
) -> torch.optim.lr_scheduler.LRScheduler:
    """Learning-rate schedule over ``steps`` meta-updates: ``constant``, ``cosine`` (to 0),
    ``linear`` (to 0, Reptile's outer step size) or ``step`` (times ``decay`` every ``decay_every``
    updates, ProtoNet's halving)."""
    if schedule == "constant":
        factor = lambda step: 1.0  # noqa: E731
    elif schedule == "cosine":
        factor = lambda step: 0.5 * (1 + math.cos(math.pi * min(step / steps, 1.0)))  # noqa: E731
    elif schedule == "linear":
        factor = lambda step: max(1.0 - step / steps, 0.0)  # noqa: E731
    elif schedule == "step":
        if decay_every < 1:
            raise ConfigError("schedule 'step' needs lr_decay_every >= 1 (meta-updates between decays)")
        factor = lambda step: decay ** (step // decay_every)  # noqa: E731
    else:
        raise ConfigError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class TrainResult:
    """What a meta-training run ended with."""

    steps: int
    best_step: int | None
    best_validation: dict[str, Any] | None
    elapsed_s: float
    run_dir: Path | None
    last_metrics: dict[str, float] = field(default_factory=dict)


class _StopRequest:
    """Turns SIGINT/SIGTERM into a request that the loop honours between meta-updates.

    The step in progress finishes, a checkpoint is written, and only then does the run stop, so a
    signal can never leave half-updated parameters or a checkpoint that does not resume exactly.
    A second signal stops at once.
    """

    def __init__(self) -> None:
        self.signal: int | None = None

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[_StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class TrainingInterrupted(KeyboardInterrupt):
    """Meta-training stopped on a signal after saving its state; ``--resume`` continues it."""


class _RunFolder:
    """The files of a run: config, metrics log and checkpoints (absent when training in memory).

    Only the ``writer`` (rank 0 of a distributed run) writes; the other processes read.
    """

    def __init__(self, run_dir: str | Path | None, writer: bool = True, tensorboard: bool = False) -> None:
        self.path = Path(run_dir) if run_dir is not None else None
        self.writer = writer
        if self.path is not None and writer:
            self.path.mkdir(parents=True, exist_ok=True)
        self.tensorboard = TensorBoard(self.path / "tensorboard") if tensorboard and self.path is not None and writer else None

    def file(self, name: str) -> Path | None:
        return self.path / name if self.path is not None else None

    def log(self, record: dict[str, Any]) -> None:
        if self.path is not None and self.writer:
            with open(self.path / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            if self.tensorboard is not None:
                self.tensorboard.log(record)

    def write_csv(self) -> None:
        """``metrics.csv`` from the log so far (at each checkpoint, so it is never far behind)."""
        if self.path is not None and self.writer:
            write_csv(self.path / "metrics.jsonl", self.path / "metrics.csv")

    def close(self) -> None:
        self.write_csv()
        if self.tensorboard is not None:
            self.tensorboard.close()

    def remove_torn_writes(self) -> None:
        """Delete the temporary files of atomic writes that a kill interrupted (``.NAME.*.tmp``; never a finished file)."""
        if self.path is not None and self.writer:
            for stale in self.path.glob(".*.tmp"):
                stale.unlink(missing_ok=True)

    def truncate_log(self, step: int) -> None:
        """Drop log records after ``step`` (a resumed run writes them again) and any line torn by a kill."""
        log = self.file("metrics.jsonl")
        if log is not None and log.is_file() and self.writer:
            kept = [record for record in read_records(log) if record.get("step", step + 1) <= step]
            atomic_write_text("".join(json.dumps(record) + "\n" for record in kept), log)


def meta_train(
    learner: MetaLearner,
    tasks: TaskDistribution,
    steps: int,
    *,
    meta_batch: int = 32,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    schedule: str = "constant",
    lr_decay_every: int = 0,
    lr_decay: float = 0.5,
    grad_clip: float | None = None,
    val_tasks: TaskDistribution | None = None,
    val_every: int = 500,
    val_episodes: int = 200,
    checkpoint_every: int | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    log_every: int = 10,
    skip_nonfinite: bool = False,
    restore_best: bool = True,
    progress: bool = True,
    world: World | None = None,
    max_minutes: float | None = None,
    tensorboard: bool = False,
) -> TrainResult:
    """Meta-train ``learner`` for ``steps`` meta-updates on batches of ``meta_batch`` tasks.

    The optimizer defaults to Adam with learning rate ``lr``. Every ``val_every`` updates (and at
    the end) the learner is tested on ``val_episodes`` fixed tasks of ``val_tasks``; the best state
    is kept and, with ``restore_best``, loaded back at the end. With ``run_dir`` the run writes
    ``config.yaml`` (``config``), ``metrics.jsonl`` and the checkpoints (``last.pt`` every
    ``checkpoint_every`` updates, default ``val_every``; ``metadata``, such as the preprocessing
    of the images, is stored in each); ``resume=True`` continues from ``last.pt`` exactly as if
    never stopped. SIGINT and SIGTERM finish the current update, save and stop. A non-finite meta-loss or gradient stops the run
    (``DivergenceError``), or with ``skip_nonfinite`` skips that meta-batch. ``max_minutes`` ends
    training early, as if ``steps`` were reached, once that much training time has been spent
    (for comparisons at an equal time budget); the result's ``steps`` says how many were done.
    The log is also kept as ``metrics.csv``, and with ``tensorboard`` as TensorBoard event files in
    ``run_dir/tensorboard``.

    With a distributed ``world`` (``fastadapt.distributed``) each process computes its slice of
    every meta-batch and the meta-gradients are averaged; rank 0 validates, logs and checkpoints.
    """
    world = world or World()
    checkpoint_every = checkpoint_every or val_every
    if min(steps, meta_batch, val_every, log_every, checkpoint_every) < 1:
        raise ConfigError(
            "steps, meta_batch, val_every, checkpoint_every and log_every must be positive, got "
            f"{steps}, {meta_batch}, {val_every}, {checkpoint_every}, {log_every}"
        )
    if meta_batch % world.size:
        raise ConfigError(f"meta_batch={meta_batch} does not split evenly over {world.size} processes: use a multiple of {world.size}")
    device = next(learner.parameters()).device
    optimizer = optimizer or torch.optim.Adam(learner.parameters(), lr=lr)
    scheduler = make_scheduler(optimizer, schedule, steps, lr_decay_every, lr_decay)
    folder = _RunFolder(run_dir, writer=world.is_main, tensorboard=tensorboard)
    start, elapsed, best, best_state = 0, 0.0, None, None
    last_file, best_file = folder.file("last.pt"), folder.file("best.pt")
    if resume:
        if folder.path is None or not any(folder.path.glob("*")):
            raise CheckpointError(f"cannot resume: there is no run in {run_dir}")
        folder.remove_torn_writes()
        if last_file.is_file():
            state = load_checkpoint(last_file, expect=learner.name)
            learner.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            tasks.load_state_dict(state["sampler"])
            set_rng_state(state["rng"])
            start, elapsed, best = state["step"], state["elapsed_s"], state["best"]
            if best is not None and best_file is not None and best_file.is_file():
                best_state = load_checkpoint(best_file)["model"]
        folder.truncate_log(start)  # no last.pt: the run was stopped before its first checkpoint, start over
    elif folder.path is not None:
        if any((folder.path / name).exists() for name in ("last.pt", "metrics.jsonl")):
            raise CheckpointError(f"{folder.path} already holds a run: continue it with resume (--resume) or choose another run folder")
        if config is not None and world.is_main:
            atomic_write_text(yaml.safe_dump(config, sort_keys=False), folder.path / "config.yaml")

    def checkpoint(path: Path | None, step: int) -> None:
        folder.write_csv()
        if path is not None and world.is_main:
            save_checkpoint(
                path,
                algorithm=learner.name,
                config=config,
                metadata=metadata or {},
                model=learner.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                sampler=tasks.state_dict(),
                rng=rng_state(),
                step=step,
                elapsed_s=elapsed,
                best=best,
            )

    def validate(step: int) -> None:
        nonlocal best, best_state
        if val_tasks is None or not world.is_main:
            return
        result = meta_test(learner, val_tasks, episodes=val_episodes)
        record = {"step": step, "kind": "val", f"val_{result.metric}": result.mean, "val_ci95": result.ci95, "val_loss": result.loss}
        folder.log(record)
        higher_is_better = result.metric in ("accuracy", "return")
        score = result.mean if higher_is_better else -result.mean
        if best is None or score > best["score"]:
            best = {"step": step, "score": score, **result.to_dict()}
            best_state = copy.deepcopy(learner.state_dict())
            checkpoint(best_file, step)
        bar.set_postfix_str(_format(window_means, f"val {result}"), refresh=False)

    learner.train()
    window: dict[str, list[float]] = {}
    window_means: dict[str, float] = {}
    skipped = 0
    bar = tqdm(total=steps, initial=start, desc=f"meta-train {learner.name}", unit="step", disable=None if progress and world.is_main else True, dynamic_ncols=True)
    clock = time.perf_counter()
    done = start
    stop = _StopRequest()
    with stop.installed():
        try:
            for step in range(start, steps):
                if max_minutes is not None and elapsed >= 60 * max_minutes:
                    break  # a resumed run whose time budget was already spent
                learner.set_step(step)
                batch = world.shard(tasks.sample(meta_batch)).to(device)
                optimizer.zero_grad(set_to_none=True)
                loss, metrics = learner.meta_backward(batch)
                if _finite_after_backward(loss, metrics, learner, world, step, last_file, skip_nonfinite):
                    if grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(learner.parameters(), grad_clip)
                    for key, value in metrics.items():
                        window.setdefault(key, []).append(value)
                else:
                    skipped += 1
                optimizer.step()  # a skipped batch left no gradients: this step changes nothing
                scheduler.step()
                done = step + 1
                out_of_time = max_minutes is not None and elapsed + time.perf_counter() - clock >= 60 * max_minutes
                final = done == steps or (max_minutes is not None and world.any(out_of_time, device))
                if done % log_every == 0 or final:
                    window_means = {k: sum(v) / len(v) for k, v in window.items()}
                    elapsed += time.perf_counter() - clock
                    clock = time.perf_counter()
                    record = {"step": done, "kind": "train", **window_means, "lr": scheduler.get_last_lr()[0], "elapsed_s": elapsed}
                    folder.log({**record, "skipped": skipped} if skipped else record)
                    bar.set_postfix_str(_format(window_means), refresh=False)
                    window = {}
                bar.update(1)
                if done % val_every == 0 or final:
                    elapsed += time.perf_counter() - clock
                    validate(done)
                    clock = time.perf_counter()
                if done % checkpoint_every == 0 or done % val_every == 0 or final:
                    elapsed += time.perf_counter() - clock
                    clock = time.perf_counter()
                    checkpoint(last_file, done)
                if final:
                    break
                if world.any(stop.signal is not None, device):
                    elapsed += time.perf_counter() - clock
                    checkpoint(last_file, done)
                    where = f"; continue with --resume {folder.path}" if folder.path is not None else ""
                    if world.is_main:
                        bar.write(f"stopped by signal after step {done}, state saved to {last_file}{where}")
                    raise TrainingInterrupted(f"stopped after step {done}")
        finally:
            bar.close()
            folder.close()
    elapsed += time.perf_counter() - clock
    if restore_best and best_state is not None:
        learner.load_state_dict(best_state)
    return TrainResult(done, best["step"] if best else None, best, elapsed, folder.path, window_means)


def _finite_after_backward(
    loss: float, metrics: dict[str, float], learner: MetaLearner, world: World, step: int, last: Path | None, skip: bool
) -> bool:
    """Average the gradients and ``metrics`` over the processes, and check that the (averaged) loss
    and gradients are finite; else stop with ``DivergenceError``, or skip the batch."""
    named = [(name, p) for name, p in learner.named_parameters() if p.grad is not None]
    stats = torch.tensor([loss, *metrics.values()], dtype=torch.float64, device=named[0][1].device if named else None)
    world.average([p.grad for _, p in named] + [stats])
    mean_loss = stats[0].item()
    metrics.update(zip(metrics, stats[1:].tolist()))
    bad = [name for name, p in named if not bool(torch.isfinite(p.grad).all())]
    if math.isfinite(mean_loss) and not bad:
        return True
    if skip:
        learner.zero_grad(set_to_none=True)
        return False
    what = f"the meta-loss is {mean_loss:.4g}"
    if math.isfinite(mean_loss):
        what += f" but its gradient is not finite in {len(bad)} tensors (e.g. {bad[0]})"
    where = f"the last good checkpoint is {last}" if last is not None and last.is_file() else "no checkpoint was written yet"
    raise DivergenceError(
        f"meta-training diverged at step {step + 1}: {what}; "
        f"{where}. Lower the learning rates or clip gradients (grad_clip), or skip such batches (skip_nonfinite)"
    )


def _format(metrics: dict[str, float], extra: str = "") -> str:
    parts = [f"{k} {v:.3f}" for k, v in metrics.items()]
    return ", ".join(parts + ([extra] if extra else []))

