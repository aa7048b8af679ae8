"""Meta-training: sample a batch of tasks, take the meta-objective, update; validate and checkpoint.

One loop serves every algorithm, supervised (``MetaLearner``: a meta-gradient and an optimizer) or meta-RL
(``RLMetaLearner``: its own outer step). A run folder holds ``config.yaml``, ``metrics.jsonl`` (and its
``metrics.csv``) and the checkpoints ``last.pt`` (to resume exactly) and ``best.pt`` (best validation).
The parts of the loop live in ``fastadapt.training``; this module puts them together.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import torch

from fastadapt.algorithms.base import MetaLearner
from fastadapt.distributed import World
from fastadapt.errors import ConfigError
from fastadapt.rl.learner import RLMetaLearner
from fastadapt.rl.tasks import RLTasks
from fastadapt.tasks import TaskDistribution
from fastadapt.training.checkpoints import Checkpoints, TrainingState, open_run
from fastadapt.training.folder import RunFolder
from fastadapt.training.loop import Trainer, TrainResult
from fastadapt.training.schedule import SCHEDULES, make_scheduler
from fastadapt.training.settings import TrainConfig
from fastadapt.training.signals import TrainingInterrupted
from fastadapt.training.update import RLUpdate, SupervisedUpdate, Update

__all__ = ["SCHEDULES", "TrainConfig", "TrainResult", "TrainingInterrupted", "make_scheduler", "meta_train"]


def meta_train(
    learner: MetaLearner | RLMetaLearner,
    tasks: TaskDistribution | RLTasks,
    steps: int | None = None,
    *,
    val_tasks: TaskDistribution | RLTasks | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    optimizer: torch.optim.Optimizer | None = None,
    world: World | None = None,
    config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    **settings: Any,
) -> TrainResult:
    """Meta-train ``learner`` for ``steps`` meta-updates on batches of ``meta_batch`` tasks.

    The settings (``TrainConfig``) come as ``train_config``, as keyword arguments (``meta_batch=16``), or
    both (the keywords, and ``steps``, win). The optimizer defaults to Adam with learning rate ``lr``; an
    ``RLMetaLearner`` (trained on ``RLTasks``) makes its own outer step and takes no optimizer, schedule or
    gradient clipping. Every ``val_every`` updates (and at the end) the learner is tested on ``val_episodes``
    fixed tasks of ``val_tasks``; the best state is kept and, with ``restore_best``, loaded back at the end. With
    ``run_dir`` the run writes ``config.yaml`` (``config``), ``metrics.jsonl`` and the checkpoints (``last.pt`` every
    ``checkpoint_every`` updates, default ``val_every``; ``metadata``, such as the preprocessing of the
    images, is stored in each); ``resume=True`` continues from ``last.pt`` exactly as if never stopped.
    SIGINT and SIGTERM finish the current update, save and stop (``TrainingInterrupted``). A non-finite
    meta-loss or gradient stops the run (``DivergenceError``), or with ``skip_nonfinite`` skips that
    meta-batch. ``max_minutes`` ends training early, as if ``steps`` were reached, once that much training
    time has been spent (for comparisons at an equal time budget); the result's ``steps`` says how many were
    done. The log is also kept as ``metrics.csv``, and with ``tensorboard`` as TensorBoard event files in
    ``run_dir/tensorboard``.

    With a distributed ``world`` (``fastadapt.distributed``) each process computes its slice of
    every meta-batch and the meta-gradients (meta-RL: the updated parameters) are averaged; rank 0 validates,
    logs and checkpoints.
    """
    train_config = _train_config(steps, train_config, settings)
    world = world or World()
    if train_config.meta_batch % world.size:
        raise ConfigError(
            f"meta_batch={train_config.meta_batch} does not split evenly over {world.size} processes: "
            f"use a multiple of {world.size}"
        )
    if isinstance(learner, RLMetaLearner):
        update, state = _rl_parts(learner, tasks, val_tasks, optimizer, train_config, world)
    else:
        update, state = _supervised_parts(learner, tasks, val_tasks, optimizer, train_config, world)
    folder = RunFolder(run_dir, writer=world.is_main, tensorboard=train_config.tensorboard)
    with folder.held():
        checkpoints = Checkpoints(folder, state, config, metadata or {})
        standing = open_run(folder, checkpoints, resume, config)
        return Trainer(update, state, train_config, checkpoints, standing, world).run()


def _supervised_parts(
    learner: MetaLearner, tasks: TaskDistribution | RLTasks, val_tasks: TaskDistribution | RLTasks | None,
    optimizer: torch.optim.Optimizer | None, settings: TrainConfig, world: World,
) -> tuple[Update, TrainingState]:
    """The update of a supervised learner (by ``optimizer``, default Adam, on the schedule) and its checkpoints'
    state."""
    tasks = _of_kind(tasks, TaskDistribution, learner, "tasks")
    val_tasks = None if val_tasks is None else _of_kind(val_tasks, TaskDistribution, learner, "val_tasks")
    if world.distributed:
        learner.check_distributable()
    optimizer = optimizer or torch.optim.Adam(learner.parameters(), lr=settings.lr)
    scheduler = make_scheduler(optimizer, settings.schedule, settings.steps, settings.lr_decay_every, settings.lr_decay)
    update = SupervisedUpdate(
        learner, tasks, val_tasks, optimizer, scheduler, meta_batch=settings.meta_batch,
        grad_clip=settings.grad_clip, world=world,
    )
    return update, TrainingState(learner.name, learner, optimizer, scheduler, tasks)


def _rl_parts(
    learner: RLMetaLearner, tasks: TaskDistribution | RLTasks, val_tasks: TaskDistribution | RLTasks | None,
    optimizer: torch.optim.Optimizer | None, settings: TrainConfig, world: World,
) -> tuple[Update, TrainingState]:
    """The update of a meta-RL learner (its own outer step) and its checkpoints' state (no optimizer)."""
    if optimizer is not None:
        raise TypeError(f"{learner.name} makes its own outer step: meta_train takes no optimizer for it")
    tasks = _of_kind(tasks, RLTasks, learner, "tasks")
    val_tasks = None if val_tasks is None else _of_kind(val_tasks, RLTasks, learner, "val_tasks")
    update = RLUpdate(learner, tasks, val_tasks, settings.meta_batch, world)
    return update, TrainingState(learner.name, learner, None, None, tasks)


Kind = TypeVar("Kind")


def _of_kind(tasks: object, kind: type[Kind], learner: MetaLearner | RLMetaLearner, role: str) -> Kind:
    """``tasks`` if they are of the ``kind`` that ``learner`` trains on; else a ``TypeError`` naming ``role``."""
    if not isinstance(tasks, kind):
        raise TypeError(f"{learner.name} trains on {kind.__name__}, not on {type(tasks).__name__} ({role})")
    return tasks


def _train_config(steps: int | None, train_config: TrainConfig | None, settings: dict[str, Any]) -> TrainConfig:
    """``train_config`` (or the defaults) with ``steps`` and the keyword ``settings`` on top."""
    unknown = sorted(set(settings) - TrainConfig.names())
    if unknown:
        raise TypeError(f"meta_train() got an unexpected keyword argument {unknown[0]!r}")
    if steps is not None:
        settings = {**settings, "steps": steps}
    if train_config is not None:
        return dataclasses.replace(train_config, **settings)
    if steps is None:
        raise TypeError("meta_train() missing 1 required argument: 'steps' (or give a train_config)")
    return TrainConfig(**settings)
