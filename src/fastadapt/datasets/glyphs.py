"""Glyphs: an Omniglot-like few-shot dataset rendered from the fonts that matplotlib ships.

Needs no download, so the default job runs on a fresh offline machine. Each class is one letter of
one of 16 scripts (Latin, Cyrillic, Canadian syllabics, Braille, Georgian, ...) drawn by the
DejaVu and STIX font families; its 20 drawings differ in font, size, aspect, slant, rotation,
position and stroke weight. Letters that render alike (Latin A, Greek Alpha, Cyrillic A) are kept
once. Scripts are split into train/val/test like Omniglot's alphabets, so test letters come from
scripts never seen in training.
"""

from __future__ import annotations

import math
import os
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from fastadapt.components import register
from fastadapt.datasets.base import ClassDataset
from fastadapt.datasets.cache import load_cache, save_cache
from fastadapt.datasets.imageconfig import ImageDatasetConfig
from fastadapt.datasets.images import Preprocessing, check_image_size
from fastadapt.datasets.paths import data_root, writable_dir
from fastadapt.errors import ConfigError, DataError

VERSION = 2
DRAWINGS = 20
CANVAS = 96  # rendering resolution before the final downsampling
SPLITS = ("train", "val", "test", "trainval", "all")
JOINED = {"trainval": ("train", "val")}  # splits made of others
VAL_SCRIPTS = frozenset({"CYRILLIC", "GREEK", "LISU", "COPTIC", "OLD ITALIC", "NKO"})
TEST_SCRIPTS = frozenset({"GEORGIAN", "ARMENIAN", "LAO", "HEBREW", "TIFINAGH", "OGHAM"})
# Two letters are "the same" if their reference renderings correlate above this.
DUPLICATE_CORRELATION = 0.85


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def font_files() -> list[Path]:
    """The DejaVu Sans/Mono/Serif and STIX General faces (LastResort and the math fonts left out)."""
    folder = _font_dir()
    names = sorted(
        f.name
        for f in folder.glob("*.ttf")
        if (f.name.startswith("DejaVuS") and "Display" not in f.name) or f.name.startswith("STIXGeneral")
    )
    if not names:
        raise DataError(f"no DejaVu or STIX fonts in {folder}: the matplotlib installation is incomplete")
    return [folder / name for name in names]


def script_of(codepoint: int) -> str:
    """The script a letter belongs to, from its Unicode name (``LATIN``, ``CANADIAN SYLLABICS``, ...)."""
    words = unicodedata.name(chr(codepoint), "UNKNOWN").split()
    if words[0] in ("TURNED", "ROMAN"):  # letter-like symbols such as TURNED CAPITAL F are Latin
        return "LATIN"
    return " ".join(words[:2]) if words[0] in ("OLD", "CANADIAN") else words[0]


def preprocessing(image_size: int = 28) -> Preprocessing:
    """How a letter in an image file becomes input like the rendered glyphs (bright ink on black):
    grayscale, inverted, since letters on paper and in most files are dark on light."""
    return Preprocessing(image_size=image_size, channels=1, invert=True)


def split_of(script: str) -> str:
    if script in TEST_SCRIPTS:
        return "test"
    return "val" if script in VAL_SCRIPTS else "train"


def _is_letter(codepoint: int) -> bool:
    char = chr(codepoint)
    braille = 0x2801 <= codepoint <= 0x28FF  # the blank pattern U+2800 draws nothing
    return (braille or unicodedata.category(char) in ("Lu", "Ll", "Lt", "Lo")) and not unicodedata.decomposition(char)


@lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _ink(codepoint: int, font_path: Path) -> Image.Image | None:
    """The glyph drawn large and cropped to its ink, or None if the font draws nothing."""
    size = CANVAS * 2
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).text(
        (size / 2, size / 2), chr(codepoint), font=_font(str(font_path), CANVAS), fill=255, anchor="mm"
    )
    box = image.getbbox()
    return image.crop(box) if box else None


def _place(
    glyph: Image.Image, scale: float, aspect: float, angle: float, shear: float, shift: tuple[float, float]
) -> Image.Image:
    """Draw ``glyph`` on the canvas: fit it to ``scale`` of the canvas, then stretch, shear, rotate, shift."""
    width, height = glyph.size
    fit = scale * CANVAS / max(width, height)
    cos, sin = math.cos(angle), math.sin(angle)
    # forward map: centre the glyph, scale (with aspect), shear, rotate, move to the canvas centre + shift
    linear = (
        np.array([[cos, -sin], [sin, cos]])
        @ np.array([[1.0, shear], [0.0, 1.0]])
        @ np.diag([fit * aspect, fit / aspect])
    )
    inverse = np.linalg.inv(linear)
    centre_out = np.array([CANVAS / 2 + shift[0], CANVAS / 2 + shift[1]])
    offset = np.array([width / 2, height / 2]) - inverse @ centre_out
    coefficients = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    return glyph.transform((CANVAS, CANVAS), Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR)


def _reference(glyph: Image.Image, image_size: int) -> np.ndarray:
    placed = _place(glyph, 0.8, 1.0, 0.0, 0.0, (0.0, 0.0)).resize((image_size, image_size), Image.Resampling.LANCZOS)
    vector = np.asarray(placed, dtype=np.float32).ravel()
    vector -= vector.mean()
    return vector / (np.linalg.norm(vector) + 1e-8)


def _letters(fonts: list[Path]) -> list[tuple[int, list[Path]]]:
    """Distinct letters with the faces that draw them, in code point order."""
    from fontTools.ttLib import TTFont

    coverage = {path: set(TTFont(path, lazy=True).getBestCmap()) for path in fonts}
    letters = sorted(c for c in set().union(*coverage.values()) if _is_letter(c))
    chosen: list[tuple[int, list[Path]]] = []
    accepted: list[np.ndarray] = []
    for codepoint in letters:
        faces = [path for path in fonts if codepoint in coverage[path]]
        if len(faces) < 2:
            continue
        glyph = _ink(codepoint, faces[0])
        if glyph is None or min(glyph.size) < 2:
            continue
        reference = _reference(glyph, 16)
        if accepted and float(np.max(np.stack(accepted) @ reference)) > DUPLICATE_CORRELATION:
            continue
        accepted.append(reference)
        chosen.append((codepoint, faces))
    return chosen


def _drawing(codepoint: int, faces: list[Path], image_size: int, rng: np.random.Generator) -> np.ndarray:
    glyph = None
    while glyph is None:
        glyph = _ink(codepoint, faces[rng.integers(len(faces))])
    placed = _place(
        glyph,
        scale=rng.uniform(0.6, 0.9),
        aspect=math.exp(rng.uniform(-0.15, 0.15)),
        angle=math.radians(rng.uniform(-12, 12)),
        shear=rng.uniform(-0.25, 0.25),
        shift=(rng.uniform(-0.08, 0.08) * CANVAS, rng.uniform(-0.08, 0.08) * CANVAS),
    )
    weight = rng.integers(3)  # thinner, as drawn, or thicker strokes
    if weight == 0:
        placed = placed.filter(ImageFilter.MinFilter(3))
    elif weight == 2:
        placed = placed.filter(ImageFilter.MaxFilter(5))
    return np.asarray(placed.resize((image_size, image_size), Image.Resampling.LANCZOS), dtype=np.uint8)


def render_glyphs(image_size: int = 28, seed: int = 0) -> tuple[ClassDataset, list[str]]:
    """Render every class (``DRAWINGS`` images each) and return it with each class's script."""
    fonts = font_files()
    letters = _letters(fonts)
    rng = np.random.default_rng(seed)
    images = np.stack([_drawing(c, faces, image_size, rng) for c, faces in letters for _ in range(DRAWINGS)])
    scripts = [script_of(c) for c, _ in letters]
    names = [f"{script.lower().replace(' ', '_')}/U+{c:04X}" for (c, _), script in zip(letters, scripts, strict=True)]
    labels = torch.arange(len(letters)).repeat_interleave(DRAWINGS)
    return ClassDataset(torch.from_numpy(images).unsqueeze(1), labels, names, name="glyphs"), scripts


def load_glyphs(
    root: str | os.PathLike[str] | None = None, image_size: int = 28, cache_dir: str | os.PathLike[str] | None = None
) -> tuple[ClassDataset, list[str]]:
    """All classes of the dataset, rendered on first use and memory-mapped from the cache after."""
    check_image_size(image_size)
    folder = Path(cache_dir) if cache_dir is not None else writable_dir(data_root(root) / "glyphs", "glyphs")
    cache_file = folder / f"glyphs-v{VERSION}-{image_size}px.pt"
    cached = load_cache(cache_file, "glyphs")
    if cached is not None:
        dataset, meta = cached
        return dataset, meta["scripts"]
    dataset, scripts = render_glyphs(image_size)
    save_cache(cache_file, dataset, {"scripts": scripts, "image_size": image_size, "version": VERSION})
    return dataset, scripts


class Glyphs(ClassDataset):
    """One split of the embedded glyph dataset (train/val/test by script) as a ``ClassDataset``."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        image_size: int = 28,
        rotations: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"unknown glyphs split {split!r}; choose one of {SPLITS}")
        full, scripts = load_glyphs(root, image_size, cache_dir)
        parts = JOINED.get(split, (split,))
        keep = [i for i, script in enumerate(scripts) if split == "all" or split_of(script) in parts]
        chosen = full.subset(keep, name=f"glyphs-{split}")
        if rotations:
            chosen = chosen.with_rotations()
        super().__init__(chosen.images, chosen.labels, chosen.class_names, chosen.name)
        self.split = split


@register("dataset", "glyphs")
@dataclass
class GlyphsConfig(ImageDatasetConfig):
    """The embedded glyphs dataset (rendered from fonts on first use, cached under ``data_dir``)."""

    data_dir: str | None = None
    rotations: bool = False

    def classes(self, split: str) -> Glyphs:
        return Glyphs(self.data_dir, split=split, image_size=self.size, rotations=self.rotations)

    def preprocessing(self) -> Preprocessing:
        return preprocessing(self.size)
