"""Few-shot prediction on your own image files with a trained model: ``fastadapt predict``.

The support folder holds one subfolder of images per class; the model adapts to it exactly as it
does to a meta-test task, then labels each query file. Every image goes through the preprocessing
stored in the checkpoint, so files of any size, mode and format are shown to the model the way its
training data was. Batch norm normalizes as the run's test does (``test.statistics``): by default
over the query batch, as in meta-testing, so that a file's prediction depends on the files given
with it. A model of your own data (``dataset.target``) is refused in one line: fastadapt does not
know how its inputs were made from files; adapt it in Python (``learner.adapt``) instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastadapt.algorithms.base import MetaLearner
from fastadapt.config import RunConfig
from fastadapt.datasets.imagefolder import class_images
from fastadapt.datasets.images import Preprocessing, as_model_input, is_image_file, load_image, pixel_mean
from fastadapt.errors import CheckpointError, DataError
from fastadapt.evaluate import recorded_population
from fastadapt.nn.functional import with_statistics
from fastadapt.nn.population import Moments, normalization
from fastadapt.population_file import population_key, stored_population

MAX_BRIGHTNESS_GAP = 0.35  # Omniglot-like data averages ~0.1; the same drawings inverted ~0.9


@dataclass(frozen=True)
class Prediction:
    """The class predicted for one query file, its probability, and the true class where known."""

    path: str
    label: str
    probability: float
    truth: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PredictionReport:
    """All predictions of one support set, with the accuracy over queries whose class is known."""

    classes: list[str]
    predictions: list[Prediction]
    preprocessing: Preprocessing

    @property
    def accuracy(self) -> float | None:
        known = [p for p in self.predictions if p.truth is not None]
        return sum(p.label == p.truth for p in known) / len(known) if known else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "predictions": [p.to_dict() for p in self.predictions],
            "accuracy": self.accuracy,
            "preprocessing": self.preprocessing.to_dict(),
        }


def query_files(paths: Sequence[str | Path]) -> list[tuple[Path, str | None]]:
    """Each query image with its true class where the layout says it: a file has none; a folder
    gives its images, or, if it holds class folders, their images labelled by folder name."""
    found: list[tuple[Path, str | None]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            found.append((path, None))
        elif path.is_dir():
            loose = sorted(p for p in path.iterdir() if is_image_file(p))
            if loose:
                found += [(p, None) for p in loose]
            else:
                found += [(file, name) for name, files in class_images(path).items() for file in files]
        else:
            raise DataError(f"no query image or folder at {path}")
    if not found:
        raise DataError("no query images given: pass image files or folders after --query")
    return found


def _load(files: Sequence[Path], preprocessing: Preprocessing) -> torch.Tensor:
    return torch.from_numpy(np.stack([load_image(path, preprocessing) for path in files]))


def _check_brightness(images: torch.Tensor, train_mean: float | None, what: str) -> None:
    """Refuse images whose brightness after preprocessing is far from the training data's: almost
    always ink and background swapped (light strokes on dark given to a model of dark on light)."""
    if train_mean is None:
        return
    mean = pixel_mean(images)
    if abs(mean - train_mean) > MAX_BRIGHTNESS_GAP:
        raise DataError(
            f"the {what} images average brightness {mean:.2f} after preprocessing, but the model was trained on "
            f"images averaging {train_mean:.2f}: they look inverted relative to its training data "
            f"(swap ink and background, or pass --force to predict anyway)"
        )


def predict_files(
    learner: MetaLearner,
    config: RunConfig,
    preprocessing: Preprocessing,
    support: str | Path,
    queries: Sequence[str | Path],
    inner_steps: int | None = None,
    train_pixel_mean: float | None = None,
    population: Moments | None = None,
) -> PredictionReport:
    """Adapt ``learner`` to the class folders of ``support`` and label every query file, batch norm normalizing as
    the run's ``test.statistics`` says (``population``: with the moments ``population``)."""
    support = Path(support).expanduser()
    if not support.is_dir():
        raise DataError(f"no support folder at {support}: give a folder with one subfolder of images per class")
    by_class = class_images(support)
    classes = list(by_class)
    if len(classes) < 2:
        raise DataError(f"{support} has {len(classes)} class folder: few-shot classification needs at least 2")
    limit = config.head_ways()
    if limit is not None and len(classes) > limit:
        raise DataError(
            f"{support} has {len(classes)} classes but this {config.algorithm.name} model was trained for "
            f"{limit}-way tasks (its output layer has {limit} units): give at most {limit} class folders"
        )
    support_images = _load([f for files in by_class.values() for f in files], preprocessing)
    support_y = torch.repeat_interleave(torch.arange(len(classes)), torch.tensor([len(f) for f in by_class.values()]))
    found = query_files(queries)
    query_images = _load([path for path, _ in found], preprocessing)
    _check_brightness(support_images, train_pixel_mean, "support")
    _check_brightness(query_images, train_pixel_mean, "query")
    unknown = sorted({truth for _, truth in found if truth is not None} - set(classes))
    if unknown:
        raise DataError(f"query class folders {unknown[:3]} are not classes of the support folder {support}")

    device = next(learner.parameters()).device
    fixed, statistics = normalization(learner, config.test.statistics, population)
    support_x = as_model_input(support_images).to(device)
    was_training = learner.training
    learner.eval()
    try:
        with fixed:
            predictor = learner.adapt(support_x, support_y.to(device), steps=inner_steps, ways=len(classes))
            with torch.no_grad():
                predictor = with_statistics(predictor, support_x, statistics)
                logits = predictor(as_model_input(query_images).to(device))[:, : len(classes)]
    finally:
        learner.train(was_training)
    probabilities = learner.probabilities(logits.double()).cpu()
    best = probabilities.argmax(dim=1)
    predictions = [
        Prediction(str(path), classes[int(b)], float(probabilities[i, b]), truth)
        for i, ((path, truth), b) in enumerate(zip(found, best, strict=True))
    ]
    return PredictionReport(classes, predictions, preprocessing)


def predict_run(
    checkpoint: str | Path,
    support: str | Path,
    queries: Sequence[str | Path],
    inner_steps: int | None = None,
    force: bool = False,
    data_dir: str | None = None,
) -> PredictionReport:
    """``predict_files`` with the learner, config and preprocessing of a run folder or checkpoint (its training data
    read from ``data_dir`` where given)."""
    from fastadapt.experiment import load_tested

    learner, config, state = load_tested(checkpoint, data_dir)
    metadata = state.get("metadata") or {}
    stored = metadata.get("preprocessing")
    preprocessing = Preprocessing.from_dict(stored) if stored is not None else config.dataset.preprocessing()
    if preprocessing is None:  # regression, or your own dataset.target: fastadapt cannot make its inputs from files
        target = getattr(config.dataset, "target", None)
        data = f"your own data ({target})" if target else f"{config.dataset.name} data"
        raise CheckpointError(f"{state['path']} is a model of {data}, not of images: predict classifies image files")
    if not isinstance(learner, MetaLearner):
        raise CheckpointError(f"{state['path']} is a {learner.name} run: predict classifies image files")
    steps = inner_steps if inner_steps is not None else config.test.inner_steps
    mean = None if force else metadata.get("pixel_mean")
    population = None
    if config.test.statistics == "population":
        population = _population(Path(checkpoint), learner, config, state, steps)
    return predict_files(learner, config, preprocessing, support, queries, steps, mean, population)


def _population(
    path: Path, learner: MetaLearner, config: RunConfig, state: dict[str, Any], steps: int | None
) -> Moments:
    """The population moments that the run's test kept for these weights and adaptation steps (in the run folder
    given, or the one a checkpoint file lies in: its own folder or, for ``trainval/last.pt``, the one above), else
    moments recorded now on the run's training data."""
    from fastadapt.experiment import population_tasks

    key = population_key(learner, steps)
    for folder in [path] if path.is_dir() else list(path.parents)[:2]:
        kept = stored_population(folder, key, next(learner.parameters()).device)
        if kept is not None:
            return kept
    try:
        return recorded_population(learner, population_tasks(config), steps)
    except DataError as error:
        raise DataError(f"{state['path']} is tested with batch norm on statistics recorded on its training data, "
                        f"which predict reads too (--data-dir: where it is): {error}") from error
