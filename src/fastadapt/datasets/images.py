"""Turning an image file into model input: one preprocessing, shared by datasets and ``predict``.

A model is only as good as the agreement between the images it was trained on and the images it
is shown later, so the rule is written once and stored in every checkpoint.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from fastadapt.errors import ConfigError, DataError

MAX_IMAGE_PIXELS = 50_000_000  # larger claims are decompression bombs, not few-shot data
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# How an image is brought to its side: Lanczos filtering (antialiased), or the nearest pixel, which is what
# Pillow's ``resize`` does to a 1-bit image whatever filter it is asked for (PIL has always forced it for modes "1"
# and "P"): how the MAML, Reptile and Prototypical Networks code read Omniglot's 1-bit PNGs.
Resample = Literal["lanczos", "nearest"]
RESAMPLING: dict[str, Image.Resampling] = dict(
    zip(get_args(Resample), (Image.Resampling.LANCZOS, Image.Resampling.NEAREST), strict=True)
)
# The smallest side the datasets decode images to; a backbone may need more (``fastadapt.nn.backbones.min_image_size``).
MIN_IMAGE_SIZE = 8


def check_image_size(size: object) -> None:
    """Refuse an ``image_size`` that is not an integer of at least ``MIN_IMAGE_SIZE``: one rule for every dataset."""
    if not isinstance(size, int) or size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image_size must be an integer of at least {MIN_IMAGE_SIZE}, got {size!r}")


def check_resample(resample: object) -> None:
    """Refuse a ``resample`` that is not a key of ``RESAMPLING``: one rule for every dataset."""
    if resample not in RESAMPLING:
        raise ConfigError(f"resample must be one of {tuple(RESAMPLING)}, got {resample!r}")


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes a ``[channels, image_size, image_size]`` uint8 array.

    The image is converted to grayscale (``channels=1``) or RGB (``channels=3``), resized to a
    square of ``image_size`` pixels (``resample``: a key of ``RESAMPLING``), and with ``invert`` mapped to
    ``255 - value``, so that dark strokes on a light page (Omniglot's files, a scanned letter) become bright on black.
    """

    image_size: int = 28
    channels: int = 1
    invert: bool = False
    resample: str = "lanczos"

    def __post_init__(self) -> None:
        check_image_size(self.image_size)
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels!r}")
        check_resample(self.resample)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(values: dict[str, Any]) -> Preprocessing:
        return Preprocessing(**values)


def load_image(
    source: str | Path | bytes | np.ndarray,
    preprocessing: Preprocessing,
    name: str | None = None,
    box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Read one image (a path, the bytes of a file, or an ``[H, W(, 3)]`` uint8 array) into a ``[C, H, W]``
    uint8 array.

    Any format Pillow reads, in any mode (1-bit, palette, 16-bit, with alpha) or size, is
    accepted; an unreadable, truncated or absurdly large file raises ``DataError`` naming it.
    ``box`` = ``(left, top, right, bottom)`` as fractions of the width and height crops the image
    before resizing (a center crop, as CUB's evaluation protocol takes).
    """
    label = name or (str(source) if isinstance(source, (str, Path)) else "image")
    try:
        with warnings.catch_warnings():  # Pillow's notes on damaged metadata are not the user's concern
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(source) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise DataError(
                        f"{label}: its header claims {image.width}x{image.height} pixels, "
                        "too many for an image to learn from"
                    )
                image.load()
                converted = _convert(image, preprocessing.channels)
                if box is not None:
                    w, h = converted.size
                    left, top, right, bottom = box
                    converted = converted.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))
                size = preprocessing.image_size
                resized = converted.resize((size, size), RESAMPLING[preprocessing.resample])
    except DataError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise DataError(
            f"{label}: its header claims too many pixels for an image to learn from (a decompression bomb?)"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(
            f"{label} is not a readable image ({error or type(error).__name__}): replace or remove it"
        ) from None
    array = np.asarray(resized, dtype=np.uint8)
    if preprocessing.invert:
        array = 255 - array
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()


def _open(source: str | Path | bytes | np.ndarray) -> Image.Image:
    if isinstance(source, np.ndarray):
        return Image.fromarray(source)
    return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)


# The arguments of one ``_decode_chunk`` call: sources, preprocessing, names and boxes.
_Chunk = tuple[
    Sequence[str | Path | bytes | np.ndarray],
    Preprocessing,
    Sequence[str] | None,
    Sequence[tuple[float, float, float, float] | None] | None,
]


def _decode_chunk(
    sources: Sequence[str | Path | bytes | np.ndarray],
    preprocessing: Preprocessing,
    names: Sequence[str] | None,
    boxes: Sequence[tuple[float, float, float, float] | None] | None,
) -> np.ndarray:
    size = preprocessing.image_size
    out = np.empty((len(sources), preprocessing.channels, size, size), dtype=np.uint8)
    for i, source in enumerate(sources):
        out[i] = load_image(source, preprocessing, name=names[i] if names else None, box=boxes[i] if boxes else None)
    return out


def _pool_context() -> multiprocessing.context.BaseContext:
    """Forked workers start at once and share the parent's imports; where fork is not the safe
    default (macOS, Windows), the platform's own start method."""
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)


def decode_images(
    sources: Sequence[str | Path | bytes | np.ndarray],
    preprocessing: Preprocessing,
    names: Sequence[str] | None = None,
    boxes: Sequence[tuple[float, float, float, float] | None] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Decode many images into one ``[n, C, H, W]`` uint8 array, in parallel worker processes.

    Most of the time per small image is Python work around Pillow's C code, which holds the GIL,
    so the work is split into chunks decoded by separate processes (one per core, or
    ``workers``, or ``$FASTADAPT_DECODE_WORKERS``); each chunk's array is copied into the
    preallocated output as it arrives. An error in any image is raised as that image's ``DataError``.
    """
    size, channels = preprocessing.image_size, preprocessing.channels
    out = np.empty((len(sources), channels, size, size), dtype=np.uint8)
    workers = workers or int(os.environ.get("FASTADAPT_DECODE_WORKERS", 0)) or min(32, os.cpu_count() or 1)
    chunk = max(64, -(-len(sources) // (workers * 8)))
    starts = range(0, len(sources), chunk)

    def piece(start: int) -> _Chunk:
        stop = start + chunk
        return (
            sources[start:stop],
            preprocessing,
            names[start:stop] if names else None,
            boxes[start:stop] if boxes else None,
        )

    with tqdm(total=len(sources), unit="img", desc="decoding", disable=None if progress else True) as bar:
        if workers == 1 or len(starts) == 1:
            for start in starts:
                decoded = _decode_chunk(*piece(start))
                out[start : start + len(decoded)] = decoded
                bar.update(len(decoded))
            return out
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            futures = {pool.submit(_decode_chunk, *piece(start)): start for start in starts}
            try:
                for future in as_completed(futures):
                    decoded = future.result()
                    out[futures[future] : futures[future] + len(decoded)] = decoded
                    bar.update(len(decoded))
            except BaseException:  # the first bad image ends the work: drop the chunks not yet started
                for future in futures:
                    future.cancel()
                raise
    return out


def _convert(image: Image.Image, channels: int) -> Image.Image:
    mode = "L" if channels == 1 else "RGB"
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bits first
        values = np.asarray(image, dtype=np.float64)
        peak = values.max() if values.size and values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values * (255.0 / peak), 0, 255).astype(np.uint8), mode="L")
    return image.convert(mode)


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def as_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (any leading shape) as the float32 values in [0, 1] that models see."""
    return images.to(torch.float32).div_(255)


def pixel_mean(images: torch.Tensor) -> float:
    """Mean value in [0, 1] of uint8 images: how bright they are, to recognise inverted images."""
    return float(images.sum(dtype=torch.int64)) / (255 * images.numel())

