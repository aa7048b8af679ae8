"""ImageFolder: both layouts, archives, a recorded seeded split, mixed images, and bad folders."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fastadapt as fa
import fastadapt.datasets.imagefolder as imagefolder
from fastadapt.config import build_config, build_tasks
from fastadapt.datasets import ImageFolder
from fastadapt.errors import DataError

MODES = ["RGB", "L", "RGBA", "P", "1"]


def _image(class_index: int, sample: int) -> Image.Image:
    """Class ``c`` is a bright bar at row ``2c``; modes and sizes vary from file to file."""
    size = (24 + 7 * (sample % 3), 24 + 5 * (sample % 2))
    array = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    row = 2 * class_index * size[1] // 24
    array[row: row + 3] = 255
    return Image.fromarray(array, "RGB").convert(MODES[sample % len(MODES)])


def _folder(root: Path, classes: int = 10, per_class: int = 4, layout: str = "classes") -> Path:
    for c in range(classes):
        split = ("train", "val", "test")[c % 3] + "/" if layout == "splits" else ""
        folder = root / f"{split}class{c:02d}"
        folder.mkdir(parents=True)
        for s in range(per_class):
            _image(c, s).save(folder / f"{s}.{'png' if s % 2 else 'bmp'}")
    first = root / "class00" if layout == "classes" else root / "train" / "class00"
    (first / "notes.txt").write_text("not an image")
    return root


def test_class_folders_are_split_by_a_recorded_seed(tmp_path: Path) -> None:
    root, cache = _folder(tmp_path / "data"), tmp_path / "cache"
    splits = {s: ImageFolder(root, s, image_size=16, cache_dir=cache) for s in ("train", "val", "test")}
    names = [set(d.class_names) for d in splits.values()]
    assert [len(n) for n in names] == [6, 2, 2] and set.union(*names) == {f"class{c:02d}" for c in range(10)}
    assert all(d.images.shape[1:] == (3, 16, 16) and len(d) == 4 * d.num_classes for d in splits.values())
    record = json.loads(next(cache.glob("imagefolder-*-split-0.json")).read_text())
    assert {s: set(record[s]) for s in splits} == dict(zip(splits, names, strict=True))
    assert set(ImageFolder(root, "test", image_size=16, cache_dir=cache).class_names) == names[2]
    reseeded = [ImageFolder(root, "test", image_size=16, split_seed=seed, cache_dir=cache) for seed in range(1, 6)]
    other = [set(d.class_names) for d in reseeded]
    assert any(o != names[2] for o in other)


def test_mixed_modes_and_sizes_become_one_preprocessing(tmp_path: Path) -> None:
    dataset = ImageFolder(_folder(tmp_path / "data"), "all", image_size=24, channels=1, cache_dir=tmp_path / "cache")
    assert dataset.images.shape == (40, 1, 24, 24) and dataset.preprocessing == fa.datasets.Preprocessing(24, 1, False)
    for c in range(10):  # every file of a class, whatever its mode and size, shows the same bar
        rows = dataset.images[dataset.labels == c].float().mean(dim=(0, 1, 3))
        assert abs(int(rows.argmax()) - (2 * c + 1)) <= 1


def test_your_own_split_folders_are_kept(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data", classes=9, layout="splits")
    test = ImageFolder(root, "test", image_size=16, cache_dir=tmp_path / "cache")
    assert test.class_names == ["test/class02", "test/class05", "test/class08"]
    assert ImageFolder(root, "train", image_size=16, cache_dir=tmp_path / "cache").num_classes == 3


def test_an_archive_of_class_folders_is_extracted_safely(tmp_path: Path) -> None:
    root = _folder(tmp_path / "mydata")
    archive = Path(shutil.make_archive(str(tmp_path / "mydata"), "zip", tmp_path, "mydata"))
    from_archive = ImageFolder(archive, "val", image_size=16, cache_dir=tmp_path / "cache")
    from_folder = ImageFolder(root, "val", image_size=16, cache_dir=tmp_path / "cache")
    assert from_archive.class_names == from_folder.class_names
    assert np.array_equal(from_archive.images.numpy(), from_folder.images.numpy())
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as handle:
        handle.writestr("../escape/a.png", b"x")
    with pytest.raises(DataError, match=r"outside the destination"):
        ImageFolder(tmp_path / "evil.zip", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "escape").exists()


def test_the_decoded_cache_is_reused_and_refreshed_when_files_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cache = _folder(tmp_path / "data"), tmp_path / "cache"
    ImageFolder(root, image_size=16, cache_dir=cache)

    def fail(*args: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    with monkeypatch.context() as patch:
        patch.setattr(ImageFolder, "_decode", staticmethod(fail))
        ImageFolder(root, "test", image_size=16, cache_dir=cache)
    _image(3, 9).save(root / "class03" / "new.png")
    assert ImageFolder(root, "all", image_size=16, cache_dir=cache).images.shape[0] == 41


def test_bad_folders_are_named(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data")
    (root / "class11").mkdir()
    with pytest.raises(DataError, match=r"1 class folders hold no images, e\.g\. .*class11: add images or remove them"):
        ImageFolder(root, cache_dir=tmp_path / "cache")
    (root / "class11").rmdir()
    (root / "class04" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"class04/broken.png is not a readable image"):
        ImageFolder(root, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="no image folder or archive at"):
        ImageFolder(tmp_path / "missing", cache_dir=tmp_path / "cache")
    (tmp_path / "flat").mkdir()
    _image(0, 0).save(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="holds no class folders"):
        ImageFolder(tmp_path / "flat", cache_dir=tmp_path / "cache")
    shutil.rmtree(root)
    _folder(root, classes=2)
    with pytest.raises(DataError, match="only 2 classes"):
        ImageFolder(root, cache_dir=tmp_path / "cache")


def test_a_config_can_train_on_an_image_folder(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data", classes=12)
    config = build_config("maml-glyphs-5w1s", [
        "dataset.name=imagefolder", f"dataset.path={root}", "dataset.image_size=16", "dataset.channels=1",
        "task.ways=2", "task.queries=2", "train_task.queries=2",
    ])
    batch = build_tasks(config, "train", seed=0).sample(3)
    assert batch.support_x.shape == (3, 2, 1, 16, 16) and batch.query_x.shape == (3, 4, 1, 16, 16)
    assert imagefolder._default_cache().is_relative_to(tmp_path)  # the user cache, never the data folder
