"""Omniglot under the papers' own protocols: random character splits (MAML, Reptile, Relation Net), rotated copies
in some splits only, and per-task rotations, on the real data."""

from __future__ import annotations

import io
import os
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import fastadapt.datasets.omniglot as omniglot
from fastadapt.config import resolve
from fastadapt.datasets import Omniglot
from fastadapt.datasets.omniglot import OmniglotConfig, random_split
from fastadapt.errors import ConfigError
from fastadapt.tasks import FewShotTasks


def _random(shared_data: Path, cache: Path, split: str, **kwargs: Any) -> Omniglot:
    return Omniglot(shared_data, split=split, scheme="random", cache_dir=cache, **kwargs)


@pytest.fixture
def config_data(shared_data: Path, omniglot_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real Omniglot for ``OmniglotConfig`` (which names no cache folder): loads read the session's cache."""
    load = omniglot.load_omniglot

    def cached(root: str | os.PathLike[str] | None, size: int, download: bool, cache_dir: object,
               resample: str = "lanczos") -> Any:
        return load(root, size, download, omniglot_cache, resample)

    monkeypatch.setattr(omniglot, "load_omniglot", cached)
    return shared_data


def _config(data: Path, **keys: Any) -> OmniglotConfig:
    dataset = {"name": "omniglot", "data_dir": str(data), "scheme": "random", **keys}
    config = resolve({"dataset": dataset, "model": {"name": "conv4"}, "algorithm": {"name": "maml"}}).dataset
    assert isinstance(config, OmniglotConfig)
    return config


def test_the_random_split_has_mamls_sizes_and_mixes_the_alphabets(shared_data: Path, omniglot_cache: Path) -> None:
    splits = {s: _random(shared_data, omniglot_cache, s) for s in ("train", "val", "test", "trainval")}
    assert [splits[s].num_classes for s in ("train", "val", "test", "trainval")] == [1100, 100, 423, 1200]
    names = {s: set(d.class_names) for s, d in splits.items()}
    assert not names["train"] & names["val"] and not names["train"] & names["test"] and not names["val"] & names["test"]
    assert names["train"] | names["val"] == names["trainval"]
    assert len(names["train"] | names["val"] | names["test"]) == 1623
    alphabets = {s: {n.split("/")[0] for n in names[s]} for s in ("train", "test")}
    assert len(alphabets["train"] & alphabets["test"]) > 40  # characters, not alphabets, are split
    assert len(splits["train"]) == 20 * 1100


def test_the_random_split_is_deterministic_and_follows_its_seed(shared_data: Path, omniglot_cache: Path) -> None:
    names = _random(shared_data, omniglot_cache, "all").class_names
    split = random_split(names, (1100, 100, 423), seed=1)
    assert random_split(list(reversed(names)), (1100, 100, 423), seed=1) == split  # the listing order does not matter
    assert split["train"][:3] == ["Gurmukhi/character23", "Malayalam/character36", "Tifinagh/character36"]  # everywhere
    assert random_split(names, (1100, 100, 423), seed=2)["test"] != split["test"]
    other = _random(shared_data, omniglot_cache, "test", split_seed=2)
    assert other.class_names != _random(shared_data, omniglot_cache, "test").class_names
    assert set(other.class_names) == set(random_split(names, (1100, 100, 423), seed=2)["test"])


def test_seed_0_gives_the_characters_of_reptiles_code(shared_data: Path, omniglot_cache: Path) -> None:
    """Reptile's ``read_dataset`` lists alphabets then characters sorted; ``random.seed(0)`` then shuffles them."""
    names = _random(shared_data, omniglot_cache, "all").class_names
    listed = sorted(names, key=lambda name: tuple(name.split("/")))
    random.Random(0).shuffle(listed)
    split = random_split(names, (1200, 0, 423), seed=0)
    assert (split["train"], split["val"], split["test"]) == (listed[:1200], [], listed[1200:])


def test_a_validation_size_of_zero_means_no_validation_split(shared_data: Path, config_data: Path) -> None:
    with pytest.raises(ConfigError, match=r"split_sizes \[1200, 0, 423\] has no validation classes"):
        Omniglot(shared_data, split="val", scheme="random", split_sizes=(1200, 0, 423))
    reptile = _config(config_data, split_sizes=[1200, 0, 423])
    assert not reptile.has_validation()
    assert (reptile.classes("train").num_classes, reptile.classes("test").num_classes) == (1200, 423)
    assert _config(config_data).has_validation() and not _config(config_data, scheme="lake").has_validation()


def test_rotation_splits_choose_which_splits_get_the_rotated_copies(config_data: Path) -> None:
    reptile = _config(config_data, split_sizes=[1200, 0, 423], rotations=True, rotation_splits=["train"])
    train, test = reptile.classes("train"), reptile.classes("test")
    assert (train.num_classes, test.num_classes) == (4 * 1200, 423)
    assert all(name.endswith(("/rot000", "/rot090", "/rot180", "/rot270")) for name in train.class_names)
    everywhere = _config(config_data, rotations=True)
    assert everywhere.rotation_splits == ["train", "val", "test"]  # the default: today's behaviour
    assert everywhere.classes("test").num_classes == 4 * 423
    assert _config(config_data, rotation_splits=["train"]).classes("train").num_classes == 1100  # without rotations
    with pytest.raises(ConfigError, match="rotates only part of the trainval split"):
        _config(config_data, rotations=True, rotation_splits=["train"]).classes("trainval")


def _drawings(data: Path, character: str) -> list[bytes]:
    """The PNG files of one character (``Alphabet/characterNN``) in the official zips, in name order."""
    for part in omniglot.PARTS:
        with zipfile.ZipFile(data / "omniglot" / f"{part}.zip") as archive:
            names = sorted(n for n in archive.namelist() if n.startswith(f"{part}/{character}/") and n.endswith(".png"))
            if names:
                return [archive.read(name) for name in names]
    raise AssertionError(f"{character} is in neither zip")


def test_reptiles_preset_sees_the_pixels_of_reptiles_code(config_data: Path) -> None:
    """Reptile's ``Character.sample`` reads ``Image.open(path).resize((28, 28)).rotate(rotation)`` with the white page
    as 1; its training classes are every training character under the four rotations."""
    reptile = _config(config_data, split_sizes=[1200, 0, 423], split_seed=0, rotations=True, rotation_splits=["train"],
                      resample="nearest", invert=False)
    train = reptile.classes("train")
    character = train.class_names[0].rsplit("/", 1)[0]
    first = Image.open(io.BytesIO(_drawings(config_data, character)[0])).resize((28, 28))
    official = {np.array(first.rotate(angle), dtype=np.uint8).tobytes() for angle in (0, 90, 180, 270)}
    ours = {(train.images[train.labels == k][0, 0] // 255).numpy().tobytes()
            for k, name in enumerate(train.class_names) if name.startswith(character + "/")}
    assert len(official) == 4 and ours == official


def test_task_rotations_turn_each_class_of_each_task_at_every_split(config_data: Path) -> None:
    maml = _config(config_data, task_rotations=True)
    plain = _config(config_data)
    for split in ("train", "test"):
        tasks, unturned = _tasks(maml, split), _tasks(plain, split)
        assert tasks.class_rotations and not unturned.class_rotations
        batch, reference = tasks.sample(20), unturned.sample(20)
        assert batch.classes is not None and reference.classes is not None
        assert torch.equal(batch.classes, reference.classes)  # the tasks drawn without rotations, turned
        turned = _turns(batch.support_x, reference.support_x)
        assert turned == _turns(batch.query_x, reference.query_x)  # 1 shot, 1 query: a class's examples turn alike
        assert set(turned) == {0, 1, 2, 3} and len({tuple(turned[i : i + 5]) for i in range(0, 100, 5)}) > 1
        first = next(tasks.episodes(4))
        assert torch.equal(first.query_x, next(_tasks(maml, split).episodes(4)).query_x)


def _tasks(config: OmniglotConfig, split: str) -> FewShotTasks:
    """5-way 1-shot tasks of ``split`` drawn as ``fastadapt.config.build_tasks`` draws them: with the config's
    ``task_options()``."""
    return FewShotTasks(config.classes(split), 5, 1, 1, seed=0, **config.task_options())


def _turns(examples: torch.Tensor, references: torch.Tensor) -> list[int]:
    """How many quarter turns each of ``examples [T, n, ...]`` is of its reference (drawings are not symmetric)."""
    pairs = zip(examples.flatten(0, 1), references.flatten(0, 1), strict=True)
    return [next(k for k in range(4) if torch.equal(x, torch.rot90(y, k, dims=(-2, -1)))) for x, y in pairs]


def test_old_configs_mean_what_they_meant(config_data: Path) -> None:
    stored = {"name": "omniglot", "data_dir": str(config_data), "scheme": "vinyals", "image_size": 28,
              "rotations": True, "download": False}
    config = resolve({"dataset": stored, "model": {"name": "conv4"}, "algorithm": {"name": "maml"}}).dataset
    assert isinstance(config, OmniglotConfig) and config.has_validation() and not config.task_rotations
    assert config.classes("test").num_classes == 4 * 423  # Vinyals's test alphabets, rotated as before
    assert config.to_dict()["rotation_splits"] == ["train", "val", "test"]


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"split_sizes": [1100, 100]}, "dataset.split_sizes must be three non-negative integers"),
        ({"split_sizes": [1100, -1, 423]}, "dataset.split_sizes must be three non-negative integers"),
        ({"split_sizes": [0, 100, 423]}, "with train and test > 0"),
        ({"split_sizes": [1200, 100, 0]}, "with train and test > 0"),
        ({"split_sizes": [1200, 100, 424]}, r"dataset.split_sizes \[1200, 100, 424\] adds up to 1724 characters; "),
        ({"rotation_splits": ["train", "trainval"]}, "dataset.rotation_splits must list distinct splits of"),
        ({"rotation_splits": ["train", "train"]}, "dataset.rotation_splits must list distinct splits of"),
        ({"scheme": "alphabets"}, "dataset.scheme must be one of"),
    ],
)
def test_bad_protocol_keys_name_the_key_in_one_line(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        _config(Path("unused"), **keys)
    assert "\n" not in str(error.value)
