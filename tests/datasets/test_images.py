"""One preprocessing for every image: modes, sizes, bit depths, corrupt files, and fuzzed bytes."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import FUZZ_SCALE, mutated, report_fuzz
from PIL import Image

from fastadapt.datasets.glyphs import load_glyphs
from fastadapt.datasets.images import MIN_IMAGE_SIZE, Preprocessing, load_image
from fastadapt.datasets.omniglot import RELEASE
from fastadapt.datasets.release import load_release
from fastadapt.errors import ConfigError, DataError


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _square(mode: str, size: tuple[int, int] = (40, 30)) -> Image.Image:
    """A white image with a black left half, in ``mode``."""
    rgb = np.full((size[1], size[0], 3), 255, dtype=np.uint8)
    rgb[:, : size[0] // 2] = 0
    return Image.fromarray(rgb, "RGB").convert(mode)


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "I;16", "I"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_mode_becomes_the_same_array(mode: str, channels: int) -> None:
    prep = Preprocessing(image_size=16, channels=channels)
    if mode in ("I;16", "I"):  # 16/32-bit grayscale: black stays 0, the brightest value maps to 255
        values = np.where(np.arange(40)[None, :] < 20, 0, 4095).repeat(30, axis=0)
        image = Image.fromarray(values.astype(np.uint16 if mode == "I;16" else np.int32))
        assert image.mode == mode
    else:
        image = _square(mode)
    array = load_image(_png(image, "TIFF" if mode in ("CMYK", "I") else "PNG"), prep)
    assert array.shape == (channels, 16, 16) and array.dtype == np.uint8
    assert array[:, :, :6].max() < 30 and array[:, :, -6:].min() > 225  # dark left, bright right


def test_invert_and_resize_from_any_size() -> None:
    prep = Preprocessing(image_size=20, channels=1, invert=True)
    for size in [(8, 8), (20, 20), (500, 90)]:
        array = load_image(_png(_square("L", size)), prep)
        assert array.shape == (1, 20, 20)
        assert array[0, :, :5].min() > 225 and array[0, :, -5:].max() < 30


def test_nearest_gives_the_pixels_pillow_gives_a_1bit_image() -> None:
    """The papers' code resized Omniglot's 1-bit files with Pillow, which takes the nearest pixel of a 1-bit image
    whatever filter it is asked for; ``resample="nearest"`` gives those very pixels, where Lanczos gives gray edges."""
    drawing = Image.fromarray(np.random.default_rng(0).random((105, 105)) > 0.2)
    assert drawing.mode == "1"
    data = _png(drawing)
    pillow = np.array(Image.open(io.BytesIO(data)).resize((28, 28), Image.Resampling.LANCZOS), dtype=np.uint8)
    nearest = load_image(data, Preprocessing(28, 1, invert=True, resample="nearest"))
    np.testing.assert_array_equal(nearest[0], 255 * (1 - pillow))
    assert len(np.unique(load_image(data, Preprocessing(28, 1, invert=True)))) > 2
    with pytest.raises(ConfigError, match=r"^resample must be one of \('lanczos', 'nearest'\), got 'bicubic'$"):
        Preprocessing(28, resample="bicubic")


def test_rotating_before_or_after_the_nearest_resize_gives_the_same_pixels() -> None:
    """ProtoNet's code rotates Omniglot's 105-pixel file, then resizes it to 28; we resize, then rotate
    (``with_rotations``). The nearest pixel of 105 at 28 is sampled symmetrically (source ``int((i + 0.5) * 3.75)``
    and ``104`` minus it for ``27 - i``), so the orders agree pixel for pixel."""
    import torch

    from fastadapt.datasets.base import ClassDataset

    drawing = Image.fromarray(np.random.default_rng(1).random((105, 105)) > 0.3)
    ours = load_image(_png(drawing), Preprocessing(28, 1, invert=True, resample="nearest"))
    rotated = ClassDataset(torch.from_numpy(ours)[None], torch.zeros(1, dtype=torch.long), ["c"]).with_rotations()
    for k, angle in enumerate((0, 90, 180, 270)):
        code = np.array(drawing.rotate(angle).resize((28, 28)), dtype=np.uint8)  # a 1-bit image: nearest
        np.testing.assert_array_equal(rotated.images[k, 0].numpy(), 255 * (1 - code))
    assert not np.array_equal(rotated.images[1, 0].numpy(), rotated.images[0, 0].numpy())


def test_files_and_bytes_give_the_same_array(tmp_path: Path) -> None:
    data = _png(_square("RGB"))
    (tmp_path / "a.png").write_bytes(data)
    prep = Preprocessing(28, 3)
    assert np.array_equal(load_image(tmp_path / "a.png", prep), load_image(data, prep))


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="channels must be 1"):
        Preprocessing(28, channels=2)
    with pytest.raises(ConfigError, match="image_size must be an integer of at least 8"):
        Preprocessing(4)


@pytest.mark.parametrize(
    "build",
    [Preprocessing, lambda size: load_glyphs(image_size=size), lambda size: load_release(RELEASE, image_size=size)],
    ids=["preprocessing", "glyphs", "release"],
)
def test_every_dataset_refuses_images_below_the_one_minimum(build: Callable[[int], object]) -> None:
    too_small = MIN_IMAGE_SIZE - 1
    message = f"image_size must be an integer of at least {MIN_IMAGE_SIZE}, got {too_small}"
    with pytest.raises(ConfigError, match=message):
        build(too_small)


def test_corrupt_truncated_and_huge_images_are_named(tmp_path: Path) -> None:
    prep = Preprocessing()
    good = _png(_square("L", (64, 64)))
    cases = {"truncated.png": good[: len(good) // 2], "text.png": b"hello, I am not a picture", "empty.png": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=f"{name} is not a readable image"):
            load_image(tmp_path / name, prep)
    # headers claiming 60M, 100M and 200M pixels: refused from the header, never decoded
    for width in (60_000, 100_000, 200_000):
        (tmp_path / "bomb.png").write_bytes(_png(Image.new("1", (width, 1000))))
        with pytest.raises(DataError, match="bomb.png: its header claims .*too many"):
            load_image(tmp_path / "bomb.png", prep)


FUZZ_TRIALS = 300 * FUZZ_SCALE


def test_fuzzed_bytes_give_an_array_or_a_data_error() -> None:
    """Random bytes and randomly damaged real files never escape as anything but ``DataError``."""
    prep = Preprocessing(16, 1)
    formats = [("L", "PNG"), ("RGB", "JPEG"), ("P", "GIF"), ("RGB", "BMP"), ("RGB", "TIFF")]
    seeds = [_png(_square(mode, (33, 21)), fmt) for mode, fmt in formats]
    fuzzed = refused = 0
    for trial in range(FUZZ_TRIALS):
        rng = random.Random(trial)
        if trial % 3 == 0:
            data = rng.randbytes(rng.randrange(1, 4096))
        else:
            data = mutated(rng, rng.choice(seeds), cut=trial % 3 == 2)
        fuzzed += len(data)
        try:
            array = load_image(data, prep, name=f"fuzz-{trial}")
            assert array.shape == (1, 16, 16) and array.dtype == np.uint8
        except DataError as error:
            assert f"fuzz-{trial}" in str(error)
            refused += 1
    report_fuzz("image reader", FUZZ_TRIALS, fuzzed, refused)
    assert 0 < refused < FUZZ_TRIALS and fuzzed > 100_000 * FUZZ_SCALE


def test_parallel_decoding_equals_one_process_and_names_a_bad_file(tmp_path: Path) -> None:
    from fastadapt.datasets.images import decode_images

    rng = np.random.default_rng(0)
    files = []
    for _ in range(300):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(buffer, format="PNG")
        files.append(buffer.getvalue())
    pre = Preprocessing(image_size=16, channels=3)
    one = decode_images(files, pre, workers=1)
    assert np.array_equal(one, decode_images(files, pre, workers=2))
    assert np.array_equal(one[5], load_image(files[5], pre))
    names = [f"image-{i}.png" for i in range(300)]
    with pytest.raises(DataError, match="image-201.png is not a readable image"):
        decode_images(files[:201] + [b"not a png"] + files[202:], pre, names=names, workers=2)
