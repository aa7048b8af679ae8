"""Whole runs from a config: build the parts, meta-train, meta-test the best state, record the result.

``fastadapt train`` and ``fastadapt eval`` are thin shells over ``run_experiment`` and
``evaluate_run``; Python users call them directly.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from fastadapt.algorithms.base import MetaLearner
from fastadapt.checkpoint import load_checkpoint
from fastadapt.config import (
    build_learner, build_tasks, check_model_fits, device_of, has_validation, optimizer_for, preprocessing_of, resolve,
    resolve_stored,
)
from fastadapt.distributed import World, current_world, place
from fastadapt.errors import CheckpointError, ConfigError
from fastadapt.evaluate import EvalResult, meta_test
from fastadapt.plots import plot_runs
from fastadapt.storage import atomic_write_text
from fastadapt.tasks import TaskDistribution
from fastadapt.train import TrainConfig, meta_train
from fastadapt.version import __version__

VAL_SEED_OFFSET = 1


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "fastadapt": __version__,
    }


def prepare(
    config: dict[str, Any], world: World | None = None
) -> tuple[MetaLearner, TaskDistribution, TaskDistribution | None]:
    """The learner (on the config's device, or this process's GPU in a distributed run), its
    training tasks and its validation tasks."""
    if config["deterministic"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(config["seed"])
    train_tasks = build_tasks(config, "train", seed=config["seed"])
    val_tasks = build_tasks(config, "val", seed=config["seed"] + VAL_SEED_OFFSET) if has_validation(config) else None
    if config["algorithm"]["name"] == "finetune" and config["algorithm"]["classes"] is None:
        config["algorithm"]["classes"] = train_tasks.dataset.num_classes  # the pre-training head, stored with the run
    device = place(device_of(config), world or World())
    learner = build_learner(config).to(device)
    check_model_fits(config, learner, train_tasks, device)
    return learner, train_tasks, val_tasks


def run_experiment(
    config: dict[str, Any], run_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Meta-train as ``config`` says, then meta-test the best state; return (and store) the result.

    The run folder gets ``config.yaml``, ``metrics.jsonl`` and ``metrics.csv``, ``last.pt``,
    ``best.pt``, ``result.json`` and the plots ``curves.png`` (``adaptation.png`` for RL); ``resume=True``
    continues an interrupted run in ``run_dir``. The ``train`` section of the config becomes the run's
    ``TrainConfig``. Started by ``torchrun``, the processes share each meta-batch (``fastadapt.distributed``);
    rank 0 returns the result, the others an empty dict.
    """
    config = resolve(config)
    world = current_world(device_of(config))
    learner, train_tasks, val_tasks = prepare(config, world)
    start = time.perf_counter()
    outcome = meta_train(
        learner,
        train_tasks,
        val_tasks=val_tasks,
        run_dir=run_dir,
        resume=resume,
        optimizer=optimizer_for(config, learner),
        world=world,
        config=config,
        metadata=_metadata(config, train_tasks),
        train_config=TrainConfig.from_section(config["train"], progress=progress),
    )
    if not world.is_main:
        return {}
    wall = time.perf_counter() - start
    test = test_learner(learner, config, progress=progress)
    curve = adaptation_test(learner, config) if is_rl(config) else None
    result = {
        "preset": config["name"],
        "algorithm": config["algorithm"]["name"],
        "dataset": config["dataset"]["name"],
        "task": config["task"],
        "test": test.to_dict(),
        "train_steps": outcome.steps,
        "best_step": outcome.best_step,
        "best_validation": outcome.best_validation,
        "train_time_s": outcome.elapsed_s,
        "wall_time_s": wall,
        "machine": machine(),
        "processes": world.size,
    }
    if curve is not None:
        result["adaptation"] = [{"steps": k, **r.to_dict()} for k, r in enumerate(curve)]
    atomic_write_text(json.dumps(result, indent=2) + "\n", Path(run_dir) / "result.json")
    plot_runs([run_dir])  # curves.png (and adaptation.png for RL) beside the result
    return result


def _metadata(config: dict[str, Any], train_tasks: TaskDistribution) -> dict[str, Any]:
    """What ``predict`` needs to show new files to the model as its training images were made."""
    preprocessing = preprocessing_of(config)
    dataset = getattr(train_tasks, "dataset", None)
    return {
        "preprocessing": preprocessing.to_dict() if preprocessing is not None else None,
        "pixel_mean": dataset.pixel_mean if preprocessing is not None and dataset is not None else None,
    }


def test_learner(
    learner: MetaLearner,
    config: dict[str, Any],
    episodes: int | None = None,
    inner_steps: int | None = None,
    split: str = "test",
    progress: bool = False,
) -> EvalResult:
    """Meta-test on the config's fixed test (or validation) episodes."""
    seed = config["test"]["seed"] if split == "test" else config["seed"] + VAL_SEED_OFFSET
    tasks = build_tasks(config, split, seed=seed)
    steps = inner_steps if inner_steps is not None else config["test"]["inner_steps"]
    count = episodes or config["test"]["episodes"]
    return meta_test(learner, tasks, episodes=count, inner_steps=steps, progress=progress)


def is_rl(config: dict[str, Any]) -> bool:
    return config["algorithm"]["name"] == "mamlrl"


def adaptation_test(
    learner: MetaLearner,
    config: dict[str, Any],
    episodes: int | None = None,
    steps: int | None = None,
    split: str = "test",
) -> list[EvalResult]:
    """RL runs: return before adaptation and after 1..``steps`` (default ``test_inner_steps``) steps."""
    from fastadapt.rl.evaluate import adaptation_curve

    seed = config["test"]["seed"] if split == "test" else config["seed"] + VAL_SEED_OFFSET
    tasks = build_tasks(config, split, seed=seed)
    if steps is None:
        steps = config["test"]["inner_steps"] if config["test"]["inner_steps"] is not None else learner.test_inner_steps
    return adaptation_curve(learner, tasks, episodes or config["test"]["episodes"], steps)


def load_learner(path: str | Path, data_dir: str | None = None) -> tuple[MetaLearner, dict[str, Any]]:
    """Rebuild the learner of a run folder or checkpoint file, with its trained weights."""
    return learner_from_checkpoint(load_checkpoint(path), data_dir)


def learner_from_checkpoint(state: dict[str, Any], data_dir: str | None = None) -> tuple[MetaLearner, dict[str, Any]]:
    """The learner and resolved config that a loaded checkpoint (``load_checkpoint``) describes."""
    if state.get("config") is None:
        raise CheckpointError(
            f"{state['path']} holds no run config (it was written by meta_train without config=...): "
            "rebuild the learner in Python and load state['model'] into it"
        )
    config = resolve_stored(state["config"])
    if data_dir is not None:
        config["dataset"]["data_dir"] = data_dir
    if state["algorithm"] != config["algorithm"]["name"]:
        raise CheckpointError(
            f"{state['path']} is a {state['algorithm']} checkpoint but its config says {config['algorithm']['name']}"
        )
    try:
        learner = build_learner(config).to(device_of(config))
    except ConfigError as error:  # e.g. its model.target is no longer importable
        raise CheckpointError(f"cannot rebuild the model of {state['path']}: {error}") from None
    try:
        learner.load_state_dict(state["model"])
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise CheckpointError(f"{state['path']} does not fit the model its config describes: {first_line}") from None
    return learner, config


def evaluate_run(
    path: str | Path, episodes: int | None = None, inner_steps: int | None = None, split: str = "test",
    data_dir: str | None = None, progress: bool = False,
) -> EvalResult:
    """Meta-test the checkpoint of a run folder (``best.pt``, else ``last.pt``) or a checkpoint file."""
    learner, config = load_learner(path, data_dir)
    return test_learner(learner, config, episodes, inner_steps, split, progress)


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config a run folder was started with."""
    file = Path(run_dir) / "config.yaml"
    if not file.is_file():
        raise CheckpointError(f"{run_dir} is not a run folder: it has no config.yaml")
    return resolve_stored(yaml.safe_load(file.read_text()))
