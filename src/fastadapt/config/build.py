"""Building a run's parts from its ``RunConfig``: the device, the task distributions of each split, the learner
(the model the model section builds, wrapped by the algorithm) and the meta-optimizer."""

from __future__ import annotations

from typing import Any

import torch

from fastadapt.algorithms.base import MetaLearner
from fastadapt.augment import AUGMENTATIONS
from fastadapt.components import ClassDatasetConfig, TaskFamilyConfig
from fastadapt.config.run import TRAINING_SPLITS, RunConfig
from fastadapt.errors import ConfigError
from fastadapt.nn.functional import call
from fastadapt.rl.learner import RLMetaLearner
from fastadapt.rl.tasks import RLTasks
from fastadapt.targets import CustomModelConfig, one_line
from fastadapt.tasks import FewShotTasks, TaskDistribution

Learner = MetaLearner | RLMetaLearner  # what an algorithm section builds
Tasks = TaskDistribution | RLTasks  # what a dataset section's tasks are


def device_of(run: RunConfig) -> torch.device:
    if run.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(run.device)
    except RuntimeError:
        raise ConfigError(f"device {run.device!r} is not a torch device (use auto, cpu, cuda or cuda:N)") from None


def build_tasks(run: RunConfig, split: str, seed: int | None = None) -> Tasks:
    """The tasks of ``split`` (``train``, ``val``, ``test``), drawn with the split's seed (``RunConfig.seed_of``)
    unless ``seed`` is given; training tasks use the ``train_task`` sizes and ``train.augment``."""
    sizes = run.sizes(split)
    augment = AUGMENTATIONS.get(run.train.augment) if split in TRAINING_SPLITS else None
    seed = run.seed_of(split) if seed is None else seed
    data = run.dataset
    if isinstance(data, ClassDatasetConfig):
        options = {"seed": seed, "augment": augment, **data.task_options()}
        tasks: Any = FewShotTasks(data.classes(split), sizes.ways, sizes.shots, sizes.queries, **options)
    elif isinstance(data, TaskFamilyConfig):
        tasks = data.tasks(split, sizes.ways, sizes.shots, sizes.queries, seed, augment)
    else:
        raise TypeError(f"{type(data).__name__} must be a ClassDatasetConfig or a TaskFamilyConfig")
    if not isinstance(tasks, (TaskDistribution, RLTasks)):
        raise TypeError(f"{type(run.dataset).__name__}.tasks returned a {type(tasks).__name__}, not a TaskDistribution")
    return tasks


def build_learner(run: RunConfig) -> Learner:
    """The algorithm and its model, sized for the config's data and tasks."""
    model = run.model.build(run.dataset, run.head_ways(), run.algorithm.backbone_options)
    learner = run.algorithm.build(model, run)
    if not isinstance(learner, (MetaLearner, RLMetaLearner)):
        raise TypeError(f"{type(run.algorithm).__name__}.build made a {type(learner).__name__}, not a MetaLearner")
    return learner


def optimizer_for(run: RunConfig, learner: torch.nn.Module) -> torch.optim.Optimizer | None:
    """The meta-optimizer of ``train.optimizer`` (``None`` for learners that apply their own outer step)."""
    if not run.algorithm.optimized:
        return None
    if run.train.optimizer == "sgd":
        return torch.optim.SGD(learner.parameters(), lr=run.train.lr)
    return torch.optim.Adam(learner.parameters(), lr=run.train.lr)


def check_model_fits(run: RunConfig, learner: torch.nn.Module, tasks: Any, device: torch.device) -> None:
    """Run your own model (``model.target``) once on a support set of ``tasks``, so that a model that does not fit
    the data (its input shape, too few logits) is one clear error before training, not a traceback inside it."""
    if not isinstance(run.model, CustomModelConfig):
        return
    spec, ways = run.model.target, run.head_ways()
    module: torch.nn.Module = getattr(learner, "model" if run.algorithm.classifier else "encoder")
    inputs = next(tasks.episodes(1)).support_x[0].to(device)
    was_training = module.training
    module.eval()  # no dropout draws; batch norm on batch statistics, as always (fastadapt.nn.call)
    try:
        with torch.no_grad():
            outputs = call(module, inputs)
    except Exception as error:  # the user's forward failed on the data: its message, in one line
        raise ConfigError(f"model.target {spec!r} does not fit the data: on inputs of shape {tuple(inputs.shape)} it "
                          f"raised {one_line(error)}") from None
    finally:
        module.train(was_training)
    if ways is not None and not (isinstance(outputs, torch.Tensor) and outputs.dim() == 2 and outputs.shape[1] >= ways):
        shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
        raise ConfigError(f"model.target {spec!r} outputs {shape} for inputs of shape {tuple(inputs.shape)}: "
                          f"{run.algorithm.name} needs {ways} logits per example, one per class of its tasks "
                          "(give the width in model.kwargs)")
