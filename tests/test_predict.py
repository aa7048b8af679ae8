"""Few-shot prediction on image files: the same numbers as the evaluator, and clear refusals."""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fastadapt as fa
from fastadapt.config import build_config, build_learner
from fastadapt.datasets import Omniglot
from fastadapt.datasets.images import as_model_input, load_image
from fastadapt.datasets.omniglot import preprocessing as omniglot_preprocessing
from fastadapt.errors import ConfigError, DataError
from fastadapt.evaluate import recorded_population
from fastadapt.experiment import population_tasks
from fastadapt.predict import predict_files, query_files

SHOTS, QUERIES, WAYS = 2, 4, 5


def _omniglot_folders(shared_data: Path, characters: list[str], tmp_path: Path) -> tuple[Path, Path]:
    """The original PNG files of ``characters``, copied into support/ and query/ class folders."""
    for part in ("images_background", "images_evaluation"):
        with zipfile.ZipFile(shared_data / "omniglot" / f"{part}.zip") as archive:
            names = sorted(n for n in archive.namelist() if n.endswith(".png"))
            for c, character in enumerate(characters):
                files = [n for n in names if n.startswith(f"{part}/{character}/")]
                for i, member in enumerate(files[: SHOTS + QUERIES]):
                    folder = tmp_path / ("support" if i < SHOTS else "query") / f"{c}-{character.replace('/', '-')}"
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / Path(member).name).write_bytes(archive.read(member))
    return tmp_path / "support", tmp_path / "query"


@pytest.mark.parametrize("preset", ["protonet-omniglot-5w1s", "maml-omniglot-5w1s"])
def test_predictions_on_real_files_equal_the_evaluator_on_the_same_task(
    preset: str, shared_data: Path, omniglot_cache: Path, tmp_path: Path
) -> None:
    dataset = Omniglot(shared_data, split="test", cache_dir=omniglot_cache)
    characters = dataset.class_names[::97][:WAYS]
    support, query = _omniglot_folders(shared_data, characters, tmp_path)
    config = build_config(preset, [f"dataset.data_dir={shared_data}"])
    learner = build_learner(config)
    statistics = config.test.statistics  # ProtoNet's: population statistics, recorded on the training tasks
    population = recorded_population(learner, population_tasks(config)) if statistics == "population" else None
    report = predict_files(learner, config, omniglot_preprocessing(28), support, [query], population=population)

    # the same task built from the decoded dataset: each file's image is one row of the cache
    rows = {}
    for c, character in enumerate(characters):
        start = int(dataset.starts[dataset.class_names.index(character)])
        block = dataset.images[start: start + 20].numpy()
        for kind in ("support", "query"):
            for file in sorted((tmp_path / kind).glob(f"{c}-*/*.png")):
                array = load_image(file, omniglot_preprocessing(28))
                rows[file.name] = torch.from_numpy(block[[i for i in range(20) if np.array_equal(block[i], array)][0]])
    take = lambda kind: torch.stack([rows[f.name] for f in sorted((tmp_path / kind).glob("*/*.png"))])  # noqa: E731
    batch = fa.TaskBatch(
        as_model_input(take("support"))[None], torch.arange(WAYS).repeat_interleave(SHOTS)[None],
        as_model_input(take("query"))[None], torch.arange(WAYS).repeat_interleave(QUERIES)[None],
    )
    learner.eval()
    fixed = fa.nn.fixed_statistics(learner, population) if population is not None else contextlib.nullcontext()
    with fixed, torch.no_grad() if preset.startswith("protonet") else torch.enable_grad():
        logits = learner.adapt(batch.support_x[0], batch.support_y[0], ways=WAYS)(batch.query_x[0]).detach()
    expected = torch.softmax(logits.double(), dim=1)
    assert [p.label for p in report.predictions] == [report.classes[i] for i in expected.argmax(1)]
    assert [p.probability for p in report.predictions] == pytest.approx(expected.max(1).values.tolist(), abs=1e-6)
    evaluated = learner.evaluate(batch, statistics=statistics, population=population)
    assert report.accuracy == pytest.approx(float(evaluated["accuracy"][0]))
    assert [p.truth for p in report.predictions] == [report.classes[i] for i in batch.query_y[0]]


def _bars(root: Path, classes: int, per_class: int, inverted: bool = False) -> Path:
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            array = np.zeros((28, 28), dtype=np.uint8)
            array[4 * c + i % 2: 4 * c + 2 + i % 2] = 255
            Image.fromarray(255 - array if inverted else array).save(root / f"class{c}" / f"{i}.png")
    return root


def test_bad_support_and_query_input_is_named(tmp_path: Path) -> None:
    config = build_config("maml-glyphs-5w1s")
    learner, prep = build_learner(config), fa.datasets.Preprocessing(28, 1, True)
    support = _bars(tmp_path / "support", 3, 2)
    cases = [
        (tmp_path / "nowhere", [support / "class0"], "no support folder at"),
        (
            _bars(tmp_path / "one", 1, 2),
            [support / "class0"],
            "has 1 class folder: few-shot classification needs at least 2",
        ),
        (
            _bars(tmp_path / "seven", 7, 1),
            [support / "class0"],
            r"has 7 classes but this maml model was trained for 5-way tasks",
        ),
        (support, [tmp_path / "missing.png"], "no query image or folder at"),
        (
            support,
            [_bars(tmp_path / "other", 4, 1)],
            r"query class folders \['class3'\] are not classes of the support folder",
        ),
    ]
    for support_dir, queries, message in cases:
        with pytest.raises(DataError, match=message):
            predict_files(learner, config, prep, support_dir, queries)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(DataError, match="broken.png is not a readable image"):
        predict_files(learner, config, prep, support, [tmp_path / "broken.png"])


def test_images_inverted_relative_to_the_training_data_are_refused(tmp_path: Path) -> None:
    config = build_config("protonet-glyphs-5w1s")
    learner, prep = build_learner(config), fa.datasets.Preprocessing(28, 1, invert=True)
    light_strokes = _bars(tmp_path / "support", 3, 2)  # bright bars on black, inverted by the preprocessing
    inverted = r"support images average brightness 0\.9\d .* trained on images averaging 0\.10"
    with pytest.raises(DataError, match=inverted):
        predict_files(learner, config, prep, light_strokes, [light_strokes], train_pixel_mean=0.10)
    report = predict_files(learner, config, prep, light_strokes, [light_strokes])  # as with --force
    assert len(report.predictions) == 6
    dark_strokes = _bars(tmp_path / "right", 3, 2, inverted=True)
    report = predict_files(learner, config, prep, dark_strokes, [dark_strokes], train_pixel_mean=0.10)
    assert report.accuracy is not None


def test_predict_normalizes_as_the_run_is_tested(tmp_path: Path) -> None:
    """Non-transductive (support statistics): a file's prediction is the same alone and among others; with the
    query batch's statistics it is not. A run tested on population statistics needs their moments."""
    support, queries = _bars(tmp_path / "support", 3, 2), _bars(tmp_path / "query", 3, 2)
    prep = fa.datasets.Preprocessing(28, 1, True)
    for statistics, independent in (("support", True), ("query", False)):
        # a high temperature keeps the probabilities off 1, where a difference would show
        config = build_config("protonet-glyphs-5w1s", [f"test.statistics={statistics}", "algorithm.temperature=1e4"])
        torch.manual_seed(0)
        learner = build_learner(config)
        together = predict_files(learner, config, prep, support, [queries])
        alone = predict_files(learner, config, prep, support, [queries / "class1" / "0.png"])
        assert together.predictions[2].path == alone.predictions[0].path
        same = together.predictions[2].probability == pytest.approx(alone.predictions[0].probability, abs=1e-6)
        assert same == independent
    config = build_config("protonet-glyphs-5w1s", ["test.statistics=population"])
    with pytest.raises(ConfigError, match="statistics='population' needs the moments"):
        predict_files(build_learner(config), config, prep, support, [queries])


def test_query_files_read_files_folders_and_class_folders(tmp_path: Path) -> None:
    labelled = _bars(tmp_path / "labelled", 2, 2)
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.new("L", (9, 9)).save(loose / "a.png")
    found = query_files([labelled, loose, loose / "a.png"])
    assert [(p.name, t) for p, t in found] == [
        ("0.png", "class0"), ("1.png", "class0"), ("0.png", "class1"), ("1.png", "class1"),
        ("a.png", None), ("a.png", None),
    ]
