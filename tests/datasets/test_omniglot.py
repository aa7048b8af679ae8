"""Omniglot: the published splits on the real data, decoding and caching, and bad files."""

from __future__ import annotations

import hashlib
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import FUZZ_SCALE, mutated, report_fuzz
from PIL import Image

import fastadapt.datasets.omniglot as omniglot
from fastadapt.datasets import Omniglot
from fastadapt.datasets.download import download
from fastadapt.errors import ConfigError, DataError


def _split_file(shared_data: Path, split: str) -> set[str]:
    return set((shared_data / "omniglot" / "splits" / "vinyals" / f"{split}.txt").read_text().split())


@pytest.mark.parametrize("split, characters", [("train", 1028), ("val", 172), ("test", 423), ("trainval", 1200)])
def test_vinyals_split_equals_the_published_split_files(
    shared_data: Path, omniglot_cache: Path, split: str, characters: int
) -> None:
    dataset = Omniglot(shared_data, split=split, rotations=True, cache_dir=omniglot_cache)
    assert dataset.num_classes == 4 * characters and len(dataset) == 80 * characters
    assert set(dataset.class_names) == _split_file(shared_data, split)


def test_lake_split_is_background_versus_evaluation(shared_data: Path, omniglot_cache: Path) -> None:
    train = Omniglot(shared_data, split="train", scheme="lake", cache_dir=omniglot_cache)
    test = Omniglot(shared_data, split="test", scheme="lake", cache_dir=omniglot_cache)
    assert (train.num_classes, test.num_classes) == (964, 659)
    assert {n.split("/")[0] for n in train.class_names}.isdisjoint({n.split("/")[0] for n in test.class_names})
    with pytest.raises(ConfigError, match="no validation classes"):
        Omniglot(shared_data, split="val", scheme="lake", cache_dir=omniglot_cache)


def test_images_are_28px_bright_ink_on_black(shared_data: Path, omniglot_cache: Path) -> None:
    dataset = Omniglot(shared_data, split="val", cache_dir=omniglot_cache)
    assert dataset.image_shape == (1, 28, 28)
    images = dataset.images.float()
    assert images.mean() < 60  # strokes are thin: mostly background
    assert (images[:, :, 0, :] == 0).float().mean() > 0.9  # the border is background
    assert images.amax(dim=(1, 2, 3)).min() > 200  # every drawing has ink


def test_the_cache_is_reused(shared_data: Path, omniglot_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(omniglot, "decode_images", fail)
    assert Omniglot(shared_data, split="test", cache_dir=omniglot_cache).num_classes == 423


# A small release in the official layout, for decoding, validation and error paths.
ALPHABETS = {"images_background": ["Alpha", "Beta"], "images_evaluation": ["Gamma", "Delta"]}


@pytest.fixture
def small_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(omniglot, "PARTS", {part: ("0" * 32, 2, 4) for part in ALPHABETS})
    monkeypatch.setattr(omniglot, "VINYALS_TEST", frozenset({"Delta"}))
    monkeypatch.setattr(omniglot, "VINYALS_VAL", frozenset({"Beta"}))
    rng = np.random.default_rng(0)
    for part, alphabets in ALPHABETS.items():
        for alphabet in alphabets:
            for character in ("character01", "character02"):
                folder = tmp_path / "omniglot" / part / alphabet / character
                folder.mkdir(parents=True)
                for k in range(20):
                    pixels = rng.random((105, 105)) > 0.1
                    Image.fromarray(pixels).save(folder / f"0001_{k + 1:02d}.png")
    return tmp_path


def _zip(root: Path, part: str) -> Path:
    folder = root / "omniglot" / part
    archive = root / "omniglot" / f"{part}.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*.png")):
            handle.write(path, path.relative_to(folder.parent).as_posix())
    return archive


def test_extracted_folders_decode_at_any_size(small_release: Path, tmp_path: Path) -> None:
    dataset = Omniglot(small_release, split="train", image_size=20, cache_dir=tmp_path / "cache")
    assert dataset.image_shape == (1, 20, 20)
    assert dataset.class_names == ["Alpha/character01", "Alpha/character02", "Gamma/character01", "Gamma/character02"]
    assert (tmp_path / "cache" / "omniglot-20px.pt").is_file()


def test_the_papers_pixels_decode_into_a_cache_of_their_own(small_release: Path, tmp_path: Path) -> None:
    """``resample="nearest"`` reads each file as the papers' code did (``Image.open(path).resize((28, 28))``: Reptile's
    keeps the white page as 1, ``invert=False``; the others invert), in its own cache beside the Lanczos one."""
    cache = tmp_path / "cache"
    smooth = Omniglot(small_release, split="train", cache_dir=cache)
    nearest = Omniglot(small_release, split="train", cache_dir=cache, resample="nearest")
    dark = Omniglot(small_release, split="train", cache_dir=cache, resample="nearest", invert=False)
    assert sorted(path.name for path in cache.glob("*.pt")) == ["omniglot-28px.pt", "omniglot-nearest-28px.pt"]
    first = small_release / "omniglot" / "images_background" / "Alpha" / "character01" / "0001_01.png"
    official = np.array(Image.open(first).resize((28, 28)), dtype=np.uint8)
    np.testing.assert_array_equal(dark.images[0, 0].numpy(), 255 * official)
    np.testing.assert_array_equal(nearest.images[0, 0].numpy(), 255 * (1 - official))
    assert set(nearest.images.unique().tolist()) == {0, 255} and len(smooth.images.unique()) > 2
    with pytest.raises(ConfigError, match=r"^resample must be one of \('lanczos', 'nearest'\)"):
        Omniglot(small_release, split="train", cache_dir=cache, resample="box")


def test_zips_decode_like_folders(small_release: Path, tmp_path: Path) -> None:
    from_folders = Omniglot(small_release, split="all", cache_dir=tmp_path / "a")
    for part in ALPHABETS:
        _zip(small_release, part)
        shutil.rmtree(small_release / "omniglot" / part)
    from_zips = Omniglot(small_release, split="all", cache_dir=tmp_path / "b")
    assert from_zips.class_names == from_folders.class_names
    assert (from_zips.images == from_folders.images).all()


def test_missing_data_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="download=True"):
        Omniglot(tmp_path, cache_dir=tmp_path / "cache")


def test_truncated_zip_is_refused(small_release: Path, tmp_path: Path) -> None:
    archive = _zip(small_release, "images_background")
    shutil.rmtree(small_release / "omniglot" / "images_background")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        Omniglot(small_release, cache_dir=tmp_path / "cache")


def test_wrong_structure_is_refused(small_release: Path, tmp_path: Path) -> None:
    (small_release / "omniglot" / "images_background" / "Alpha" / "character01" / "0001_01.png").unlink()
    with pytest.raises(DataError, match="not the Omniglot release"):
        Omniglot(small_release, cache_dir=tmp_path / "cache")


def test_corrupt_image_is_named(small_release: Path, tmp_path: Path) -> None:
    bad = small_release / "omniglot" / "images_evaluation" / "Gamma" / "character02" / "0001_05.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="0001_05.png is not a readable image"):
        Omniglot(small_release, cache_dir=tmp_path / "cache")


def test_download_verifies_the_checksum(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"omniglot" * 1000)
    good = hashlib.md5(source.read_bytes()).hexdigest()
    target = download(source.as_uri(), tmp_path / "out" / "file.zip", md5=good, progress=False)
    assert target.read_bytes() == source.read_bytes()
    with pytest.raises(DataError, match="md5 check"):
        download(source.as_uri(), tmp_path / "out" / "other.zip", md5="0" * 32, progress=False)
    assert not (tmp_path / "out" / "other.zip").exists() and not (tmp_path / "out" / "other.zip.part").exists()


def test_missing_parts_are_downloaded_when_allowed(
    small_release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    parts = {}
    for part in ALPHABETS:
        archive = _zip(small_release, part)
        shutil.rmtree(small_release / "omniglot" / part)
        archive.rename(mirror / archive.name)
        parts[part] = (hashlib.md5((mirror / archive.name).read_bytes()).hexdigest(), 2, 4)
    monkeypatch.setattr(omniglot, "PARTS", parts)
    monkeypatch.setattr(omniglot, "BASE_URL", mirror.as_uri() + "/")
    dataset = Omniglot(small_release, split="all", download=True, cache_dir=tmp_path / "cache")
    assert dataset.num_classes == 8
    assert (small_release / "omniglot" / "images_background.zip").is_file()


FUZZ_TRIALS = 60 * FUZZ_SCALE


def test_fuzzed_zips_decode_or_fail_with_a_data_error(small_release: Path, tmp_path: Path) -> None:
    """Damaged copies of the release zips (bytes overwritten, or cut short) are either read as they
    are or refused with ``DataError``: never another exception, never a partial cache."""
    pristine = {part: _zip(small_release, part).read_bytes() for part in ALPHABETS}
    for part in ALPHABETS:
        shutil.rmtree(small_release / "omniglot" / part)
    fuzzed = refused = 0
    for trial in range(FUZZ_TRIALS):
        rng = random.Random(trial)
        part = rng.choice(sorted(ALPHABETS))
        data = mutated(rng, pristine[part], cut=trial % 4 == 3)
        for name, original in pristine.items():
            (small_release / "omniglot" / f"{name}.zip").write_bytes(data if name == part else original)
        fuzzed += len(data)
        cache = tmp_path / f"cache-{trial}"
        try:
            dataset, _ = omniglot.load_omniglot(small_release, cache_dir=cache)
            assert dataset.num_classes == 8 and len(dataset) == 160
        except DataError:
            refused += 1
            assert not cache.exists() or not any(cache.glob("*.pt"))
    report_fuzz("Omniglot zip reader", FUZZ_TRIALS, fuzzed, refused)
    assert refused > FUZZ_TRIALS // 2 and fuzzed > 1_000_000
