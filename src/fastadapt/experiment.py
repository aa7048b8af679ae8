"""Whole runs from a config: build the parts, meta-train, meta-test the best state, record the result.

``fastadapt train`` and ``fastadapt eval`` are thin shells over ``run_experiment`` and
``evaluate_run``; Python users call them directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import yaml

from fastadapt.algorithms.base import MetaLearner
from fastadapt.algorithms.ensemble import Ensemble
from fastadapt.checkpoint import load_checkpoint
from fastadapt.config import (
    Learner,
    RunConfig,
    Tasks,
    TestSection,
    build_learner,
    build_tasks,
    check_model_fits,
    device_of,
    merge,
    optimizer_for,
    resolve,
    resolve_stored,
    unflatten,
)
from fastadapt.distributed import World, current_world, place
from fastadapt.errors import CheckpointError, ConfigError, DivergenceError
from fastadapt.evaluate import EvalResult, meta_test, recorded_population
from fastadapt.nn.functional import Statistics, check_statistics
from fastadapt.nn.population import Moments, StatisticsRecorder
from fastadapt.plots import plot_runs
from fastadapt.population_file import population_key, store_population, stored_population
from fastadapt.rl.evaluate import adaptation_curve
from fastadapt.rl.learner import RLMetaLearner
from fastadapt.rl.tasks import RLTasks
from fastadapt.storage import atomic_write_text, exclusive
from fastadapt.tasks import TaskDistribution
from fastadapt.train import TrainConfig, TrainResult, meta_train
from fastadapt.training.checkpoints import top_models
from fastadapt.training.folder import write_config
from fastadapt.version import __version__

TRAINVAL = "trainval"  # the sub-folder of a run retrained on the training and validation classes


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


@dataclass
class Prepared:
    """A run's parts: its config (with what the training data settles, e.g. FineTune's classes, filled in), the
    learner on its device, and the training and validation tasks."""

    config: RunConfig
    learner: Learner
    train_tasks: Tasks
    val_tasks: Tasks | None


def prepare(config: RunConfig, world: World | None = None, split: str = "train") -> Prepared:
    """The learner (on the config's device, or this process's GPU in a distributed run) and its tasks: training
    tasks of ``split`` (``trainval`` for retraining on the training and validation classes, which leaves none to
    validate on)."""
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(config.seed)
    train_tasks = build_tasks(config, split)
    val_tasks = build_tasks(config, "val") if config.dataset.has_validation() and split == "train" else None
    config = config.replace(algorithm=config.algorithm.settle(train_tasks))
    device = place(device_of(config), world or World())
    learner = build_learner(config).to(device)
    check_model_fits(config, learner, train_tasks, device)
    if config.test.statistics == "population":
        StatisticsRecorder(learner)  # refuses a model without batch norm before training, not after it
    return Prepared(config, learner, train_tasks, val_tasks)


def run_experiment(
    config: RunConfig | dict[str, Any], run_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Meta-train as ``config`` says, then meta-test what ``test`` names; return (and store) the result.

    The run folder gets ``config.yaml``, ``metrics.jsonl`` and ``metrics.csv``, ``last.pt``,
    ``best.pt``, ``result.json`` and the plots ``curves.png`` (``adaptation.png`` for RL); ``resume=True``
    continues an interrupted run in ``run_dir``. With ``train.retrain_on_trainval`` a second model is trained in
    ``run_dir/trainval`` on the training and validation classes (Snell et al.) and tested instead of the first.
    The ``train`` section of the config becomes the run's
    ``TrainConfig``. Started by ``torchrun``, the processes share each meta-batch (``fastadapt.distributed``);
    rank 0 returns the result, the others an empty dict. While it runs, the folder is this process's: another
    process that trains into it (or resumes it) is refused with a one-line error.
    """
    run = resolve(config)
    world = current_world(device_of(run))
    with exclusive(run_dir) if world.is_main else contextlib.nullcontext():  # one process writes a run folder
        return _run(run, Path(run_dir), resume, progress, world)


def _run(run: RunConfig, run_dir: Path, resume: bool, progress: bool, world: World) -> dict[str, Any]:
    """``run_experiment`` once the run folder is held: train (and retrain on train + val), test, store."""
    start = time.perf_counter()
    parts = prepare(run, world)
    config = parts.config
    settings = config.train.settings(progress=progress, restore_best=_best(config))
    outcome = _train(parts, run_dir, resume, world, settings)
    learner, retrained = parts.learner, None
    if config.train.retrain_on_trainval:
        learner, retrained = _retrain_on_trainval(config, outcome, run_dir, world, progress)
    if not world.is_main:
        return {}
    result = {
        "preset": config.name,
        "algorithm": config.algorithm.name,
        "dataset": config.dataset.name,
        "task": dataclasses.asdict(config.task),
        "train_steps": outcome.steps,
        "best_step": outcome.best_step,
        "best_validation": outcome.best_validation,
        "train_time_s": outcome.elapsed_s + (retrained.elapsed_s if retrained is not None else 0.0),
        "wall_time_s": time.perf_counter() - start,
        "machine": machine(),
        "processes": world.size,
    }
    if retrained is not None:
        result["retrained_on_trainval"] = {"steps": retrained.steps, "run": str(retrained.run_dir),
                                           "train_time_s": retrained.elapsed_s}
    tested = tested_learner(learner, config, run_dir)
    return _tested(tested, config, run_dir, result, progress, load_checkpoint(tested_checkpoint(run_dir, config)))


def _tested(
    learner: Learner, config: RunConfig, run_dir: Path, result: dict[str, Any], progress: bool,
    state: dict[str, Any],
) -> dict[str, Any]:
    """``result`` with the run's test of ``learner``, loaded from the checkpoint ``state`` (and for RL its adaptation
    curve), stored in ``result.json`` beside the plots."""
    result = {key: value for key, value in result.items() if key not in ("test", "ensemble", "adaptation")}
    moments = _kept_population(learner, config, run_dir)
    result["test"] = test_learner(learner, config, progress=progress, population=moments).to_dict()
    if isinstance(learner, Ensemble):
        result["ensemble"] = len(learner.members)
    result["tested_step"] = None if isinstance(learner, Ensemble) else int(state["step"])
    if is_rl(config):
        result["adaptation"] = [{"steps": k, **r.to_dict()} for k, r in enumerate(adaptation_test(learner, config))]
    atomic_write_text(json.dumps(result, indent=2) + "\n", run_dir / "result.json")
    plot_runs([run_dir])  # curves.png (and adaptation.png for RL) beside the result
    return result


def _kept_population(learner: Learner, config: RunConfig, run_dir: Path) -> Moments | None:
    """Where the run tests on population statistics, the moments recorded for the tested ``learner`` (those the run
    folder already keeps for these weights, else recorded now and kept in ``population.pt`` for ``predict``);
    else None."""
    if config.test.statistics != "population" or not isinstance(learner, MetaLearner):
        return None
    key = population_key(learner, config.test.inner_steps)
    kept = stored_population(run_dir, key, next(learner.parameters()).device)
    if kept is not None:
        return kept
    moments = recorded_population(learner, population_tasks(config), config.test.inner_steps)
    store_population(run_dir, moments, key)
    return moments


def retest_run(
    run_dir: str | Path, test: TestSection, data_dir: str | None = None, progress: bool = False
) -> dict[str, Any]:
    """Test a finished run again under other test settings (e.g. ``checkpoint="last"``), without training it: its
    ``result.json`` and then its ``config.yaml`` say so afterwards (a re-test stopped half-way leaves the old test
    settings, so it is re-tested again). Returns the new result."""
    run_dir = Path(run_dir)
    with exclusive(run_dir):
        if not (run_dir / "result.json").is_file():
            raise CheckpointError(f"{run_dir} holds no finished run (no result.json) to test again: finish it first "
                                  f"with fastadapt train --resume {run_dir}")
        result = json.loads((run_dir / "result.json").read_text())
        checked = resolve(read_config(run_dir).replace(test=test).to_dict())  # e.g. an ensemble needs its checkpoints
        learner, config, state = load_tested(run_dir, data_dir, checked)
        result = _tested(learner, config, run_dir, result, progress, state)
        write_config(run_dir, checked.to_dict())
        return result


def _best(config: RunConfig) -> bool:
    """Whether the run tests its state best on validation (``test.checkpoint``), rather than its last."""
    return config.test.checkpoint == "best"


def _train(parts: Prepared, run_dir: Path, resume: bool, world: World, settings: TrainConfig) -> TrainResult:
    """``meta_train`` on the prepared parts, recording the run in ``run_dir``."""
    return meta_train(
        parts.learner, parts.train_tasks, val_tasks=parts.val_tasks, run_dir=run_dir, resume=resume,
        optimizer=optimizer_for(parts.config, parts.learner), world=world, config=parts.config.to_dict(),
        metadata=_metadata(parts.config, parts.train_tasks), train_config=settings,
    )


def _retrain_on_trainval(
    config: RunConfig, first: TrainResult, run_dir: Path, world: World, progress: bool
) -> tuple[Learner, TrainResult]:
    """Snell et al.'s second phase: a fresh model trained on the training and validation classes for the early-stopped
    run's best step plus ``patience`` updates, in ``run_dir/trainval`` (resumed if it was interrupted)."""
    if first.best_step is None or config.train.patience is None:
        raise DivergenceError("no validation of the early-stopped run was finite: there is no best step to retrain to")
    steps = first.best_step + config.train.patience
    train = dataclasses.replace(config.train, steps=steps, patience=None, retrain_on_trainval=False)
    retrain = config.replace(train=train)
    folder = run_dir / TRAINVAL
    parts = prepare(retrain, world, split="trainval")
    settings = train.settings(progress=progress, restore_best=False)
    return parts.learner, _train(parts, folder, (folder / "last.pt").is_file(), world, settings)


def _metadata(config: RunConfig, train_tasks: Tasks) -> dict[str, Any]:
    """What ``predict`` needs to show new files to the model as its training images were made."""
    preprocessing = config.dataset.preprocessing()
    dataset = getattr(train_tasks, "dataset", None)
    return {
        "preprocessing": preprocessing.to_dict() if preprocessing is not None else None,
        "pixel_mean": dataset.pixel_mean if preprocessing is not None and dataset is not None else None,
    }


def test_learner(
    learner: Learner,
    config: RunConfig,
    episodes: int | None = None,
    inner_steps: int | None = None,
    split: str = "test",
    progress: bool = False,
    population: Moments | None = None,
) -> EvalResult:
    """Meta-test on the config's fixed test (or validation) episodes, with its ``test.statistics`` (``population``:
    on the moments given, else on moments recorded now on the training tasks)."""
    tasks = build_tasks(config, split)
    steps = inner_steps if inner_steps is not None else config.test.inner_steps
    count = episodes or config.test.episodes
    return meta_test(
        learner, tasks, episodes=count, inner_steps=steps, progress=progress, statistics=config.test.statistics,
        population=population if population is not None else population_tasks(config),
    )


def population_tasks(config: RunConfig) -> TaskDistribution | RLTasks | None:
    """The training tasks that fix batch norm's statistics where ``test.statistics`` is ``population``, else None:
    those of the training classes, also for a model retrained on train + val (the same kind of data; a checkpoint's
    config does not say which split trained it)."""
    return build_tasks(config, "train") if config.test.statistics == "population" else None


def is_rl(config: RunConfig) -> bool:
    return config.dataset.problem == "rl"


def adaptation_test(
    learner: Learner,
    config: RunConfig,
    episodes: int | None = None,
    steps: int | None = None,
    split: str = "test",
) -> list[EvalResult]:
    """RL runs: return before adaptation and after 1..``steps`` (default ``test_inner_steps``) steps."""
    tasks = build_tasks(config, split)
    if not isinstance(learner, RLMetaLearner) or not isinstance(tasks, RLTasks):
        raise TypeError(f"adaptation_test measures an RLMetaLearner on RLTasks, not {type(learner).__name__} on "
                        f"{type(tasks).__name__}")
    if steps is None:
        steps = config.test.inner_steps if config.test.inner_steps is not None else learner.test_inner_steps
    return adaptation_curve(learner, tasks, episodes or config.test.episodes, steps)


def load_learner(path: str | Path, data_dir: str | None = None) -> tuple[Learner, RunConfig]:
    """Rebuild the learner of a run folder or checkpoint file, with its trained weights (``load_tested``)."""
    learner, config, _ = load_tested(path, data_dir)
    return learner, config


def load_tested(
    path: str | Path, data_dir: str | None = None, own: RunConfig | None = None
) -> tuple[Learner, RunConfig, dict[str, Any]]:
    """The learner, config and checkpoint of a checkpoint file, or what a run folder's test tests under its
    config (``own``, default its ``config.yaml``): the file ``tested_checkpoint`` names or, with a
    ``test.ensemble``, the ensemble of its best validations' checkpoints. The folder's test settings and (without
    ``data_dir``) the place of its data are its config's, which a re-test (``retest_run``) or a move
    (``carried``) may have changed since the checkpoints were written."""
    path = Path(path)
    if not path.is_dir():
        state = load_checkpoint(path)
        return (*learner_from_checkpoint(state, data_dir), state)
    own = own if own is not None else read_config(path)
    state = load_checkpoint(tested_checkpoint(path, own))
    if own.train.retrain_on_trainval:
        _check_retrained(path, state)
    here = data_dir if data_dir is not None else getattr(own.dataset, "data_dir", None)  # the folder's place wins
    learner, config = learner_from_checkpoint(state, here)
    config = config.replace(test=own.test)
    return tested_learner(learner, config, path), config, state


def tested_checkpoint(path: str | Path, config: RunConfig | None = None) -> Path:
    """The checkpoint file a run folder's test uses under ``config`` (default: its ``config.yaml``): the retrained
    model's ``trainval/last.pt`` after ``train.retrain_on_trainval``, else ``best.pt`` or ``last.pt`` as
    ``test.checkpoint`` says (``last.pt`` where no validation wrote a ``best.pt``). A file is itself."""
    path = Path(path)
    if not path.is_dir():
        return path
    config = config if config is not None else read_config(path)
    if config.train.retrain_on_trainval:
        retrained = path / TRAINVAL / "last.pt"
        if not retrained.is_file():
            raise CheckpointError(f"{path} tests the model retrained on train + val, which has not been trained yet: "
                                  "continue the run with --resume")
        return retrained
    best = path / "best.pt"
    return best if _best(config) and best.is_file() else path / "last.pt"


def _check_retrained(path: Path, state: dict[str, Any]) -> None:
    """A run folder stands for its model retrained on train + val once retraining ended (all its steps, or a time
    budget, after which the run tested it and wrote ``result.json``); before, the partial model is tested only when
    asked for by its file."""
    done, planned = int(state["step"]), int(state["config"]["train"]["steps"])
    if done < planned and not (path / "result.json").is_file():
        raise CheckpointError(f"{path} has retrained on train + val only to step {done} of {planned}: continue the run "
                              f"with --resume, or give {path / TRAINVAL / 'last.pt'} to test the model as it stands")


def tested_learner(learner: Learner, config: RunConfig, run_dir: str | Path) -> Learner:
    """What a run tests: ``learner``, or with ``test.ensemble`` above one the ``Ensemble`` of the checkpoints of the
    run's best validations (as many as it kept, up to that number)."""
    if config.test.ensemble == 1:
        return learner
    return _ensemble(config, top_models(run_dir, config.test.ensemble))


def _ensemble(config: RunConfig, states: list[dict[str, torch.Tensor]]) -> Ensemble:
    """The ``Ensemble`` of the learners ``config`` describes with the weights ``states`` (supervised learners:
    ``check_ensemble`` refuses meta-RL)."""
    return Ensemble([cast(MetaLearner, _rebuilt(config, state)) for state in states])


def _rebuilt(config: RunConfig, state: dict[str, torch.Tensor]) -> Learner:
    """The learner ``config`` describes, with the weights ``state``."""
    learner = build_learner(config).to(device_of(config))
    learner.load_state_dict(state)
    return learner


def learner_from_checkpoint(state: dict[str, Any], data_dir: str | None = None) -> tuple[Learner, RunConfig]:
    """The learner and resolved config that a loaded checkpoint (``load_checkpoint``) describes."""
    if state.get("config") is None:
        raise CheckpointError(
            f"{state['path']} holds no run config (it was written by meta_train without config=...): "
            "rebuild the learner in Python and load state['model'] into it"
        )
    config = with_data_dir(resolve_stored(state["config"]), data_dir)
    if state["algorithm"] != config.algorithm.name:
        raise CheckpointError(
            f"{state['path']} is a {state['algorithm']} checkpoint but its config says {config.algorithm.name}"
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


def learner_with(learner: Learner, config: RunConfig, changes: dict[str, Any]) -> tuple[Learner, RunConfig]:
    """A copy of a trained ``learner`` built from ``config`` with ``changes`` (dotted keys) applied, e.g. another
    test-time step size: the same weights in a learner that adapts differently."""
    changed = resolve(merge(config.to_dict(), unflatten(changes)))
    if isinstance(learner, Ensemble):
        return _ensemble(changed, [member.state_dict() for member in learner.members]), changed
    return _rebuilt(changed, learner.state_dict()), changed


def evaluate_run(
    path: str | Path, episodes: int | None = None, inner_steps: int | None = None, split: str = "test",
    data_dir: str | None = None, progress: bool = False, statistics: Statistics | None = None,
) -> EvalResult:
    """Meta-test what a run folder tested (``tested_checkpoint``) or a checkpoint file; ``statistics`` in place of
    the run's ``test.statistics`` where given (e.g. a transductively tested run, tested again without)."""
    learner, config = load_learner(path, data_dir)
    if statistics is not None:
        check_statistics(statistics)
        config = config.replace(test=dataclasses.replace(config.test, statistics=statistics))
    return test_learner(learner, config, episodes, inner_steps, split, progress)


def with_dataset_field(config: RunConfig, key: str, value: Any) -> RunConfig:
    """``config`` with ``dataset.<key>`` set to ``value`` where its dataset has that field (generated tasks, as
    sinusoid or RL, have no files to find or download)."""
    if not hasattr(config.dataset, key):
        return config
    return config.replace(dataset=dataclasses.replace(config.dataset, **{key: value}))


def with_data_dir(config: RunConfig, data_dir: str | None) -> RunConfig:
    """``config`` reading its dataset from ``data_dir`` (where the data is on this machine), if given."""
    return config if data_dir is None else with_dataset_field(config, "data_dir", data_dir)


def carried(run_dir: Path, config: RunConfig, data_dir: str | None) -> RunConfig:
    """The config ``config`` of the run in ``run_dir``, its data read from ``data_dir`` where given: the folder was
    carried to a machine that keeps the data elsewhere. Its ``config.yaml`` records the new place, for a later
    ``eval`` or ``predict`` too."""
    moved = with_data_dir(config, data_dir)
    if moved != config:
        write_config(run_dir, moved.to_dict())
    return moved


def read_config(run_dir: str | Path) -> RunConfig:
    """The resolved config a run folder was started with."""
    file = Path(run_dir) / "config.yaml"
    if not file.is_file():
        if (Path(run_dir) / "last.pt").is_file():
            raise CheckpointError(f"{run_dir} holds no run config (config.yaml): it was written by meta_train without "
                                  "config=...; rebuild the learner in Python and load its best.pt's or last.pt's "
                                  "'model'")
        raise CheckpointError(f"{run_dir} is not a run folder: it has no config.yaml")
    return resolve_stored(yaml.safe_load(file.read_text()))
