"""Omniglot (Lake et al. 2015): 1623 handwritten characters of 50 alphabets, 20 drawings each.

The official release is two zips, ``images_background.zip`` (30 alphabets, 964 characters) and
``images_evaluation.zip`` (20 alphabets, 659 characters). They are read in place (zip or extracted
folder), decoded once into a uint8 cache (ink bright on black, ``image_size`` pixels square) and
memory-mapped by later runs.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from fastadapt.datasets.archives import ARCHIVE_ERRORS
from fastadapt.datasets.base import ClassDataset
from fastadapt.datasets.images import Preprocessing, decode_images
from fastadapt.datasets.release import Decoded, Release, Source, load_release
from fastadapt.errors import ConfigError, DataError

BASE_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
# part -> (md5 of the official zip, alphabets, characters); the md5s are those the release publishes.
PARTS = {
    "images_background": ("68d2efa1b9178cc56df9314c21c6e718", 30, 964),
    "images_evaluation": ("6b91aef0f799c5bb55b94e3f2daec811", 20, 659),
}
IMAGES_PER_CHARACTER = 20
MAX_MEMBER_BYTES = 1 << 20  # an Omniglot PNG is ~300 bytes; anything huge is not the release

# The split of Vinyals et al. (2016) as published with the Prototypical Networks code: by alphabet,
# except Gurmukhi, whose characters 42-45 are test and the rest train.
VINYALS_VAL = frozenset({"Armenian", "Bengali", "Early_Aramaic", "Hebrew", "Mkhedruli_(Georgian)"})
VINYALS_TEST = frozenset(
    {
        "Kannada", "Keble", "Malayalam", "Manipuri", "Mongolian", "Old_Church_Slavonic_(Cyrillic)", "Oriya",
        "Sylheti", "Syriac_(Serto)", "Tengwar", "Tibetan", "ULOG",
    }
)
SCHEMES = ("vinyals", "lake")
SPLITS = {"vinyals": ("train", "val", "test", "trainval", "all"), "lake": ("train", "test", "all")}


def vinyals_split(class_name: str) -> str:
    """``train``, ``val`` or ``test`` for a character named ``Alphabet/characterNN``."""
    alphabet, character = class_name.split("/")
    if alphabet == "Gurmukhi":
        return "test" if int(character.removeprefix("character")) >= 42 else "train"
    if alphabet in VINYALS_TEST:
        return "test"
    return "val" if alphabet in VINYALS_VAL else "train"


def _in_split(scheme: str, split: str, class_name: str, part: str) -> bool:
    if split == "all":
        return True
    if scheme == "lake":
        return (part == "images_background") == (split == "train")
    which = vinyals_split(class_name)
    return which in ("train", "val") if split == "trainval" else which == split


def _find_source(folder: Path, part: str) -> Path:
    extracted, archive = folder / part, folder / f"{part}.zip"
    if extracted.is_dir():
        return extracted
    if archive.is_file():
        return archive
    raise DataError(RELEASE.missing_message(folder))


def _members(source: Path) -> Iterator[tuple[str, bytes]]:
    """``(relative path, bytes)`` of every PNG under a zip or an extracted folder, sorted by path."""
    if source.is_dir():
        for path in sorted(source.rglob("*.png")):
            yield path.relative_to(source.parent).as_posix(), path.read_bytes()
        return
    try:
        with zipfile.ZipFile(source) as archive:
            infos = sorted((i for i in archive.infolist() if i.filename.endswith(".png")), key=lambda i: i.filename)
            for info in infos:
                if info.file_size > MAX_MEMBER_BYTES:
                    raise DataError(f"{source}: member {info.filename} is {info.file_size} bytes, too large for an Omniglot image")
                yield info.filename, archive.read(info)
    except ARCHIVE_ERRORS as error:
        raise DataError(
            f"{source} is not a readable zip archive ({error}): it is corrupt or truncated; "
            f"delete it and download it again (download=True)"
        ) from None


def preprocessing(image_size: int = 28) -> Preprocessing:
    """Omniglot's files are black strokes on white: grayscale, inverted so that ink is bright."""
    return Preprocessing(image_size=image_size, channels=1, invert=True)


def _read_part(source: Path, part: str) -> tuple[list[bytes], list[str], list[str]]:
    """The PNG files of one part, their names and characters; checks the release's counts."""
    files: list[bytes] = []
    names: list[str] = []
    characters: list[str] = []
    counts: dict[str, int] = {}
    for name, data in _members(source):
        pieces = name.split("/")
        if len(pieces) != 4 or pieces[0] != part:
            raise DataError(f"{source}: unexpected member {name}; expected {part}/<alphabet>/<character>/<file>.png")
        character = f"{pieces[1]}/{pieces[2]}"
        if character not in counts:
            counts[character] = 0
            characters.append(character)
        counts[character] += 1
        files.append(data)
        names.append(f"{source}:{name}")
    _, alphabets, expected = PARTS[part]
    found_alphabets = {c.split("/")[0] for c in characters}
    wrong = [c for c, n in counts.items() if n != IMAGES_PER_CHARACTER]
    if len(characters) != expected or len(found_alphabets) != alphabets or wrong:
        raise DataError(
            f"{source} is not the Omniglot release: {len(found_alphabets)} alphabets and {len(characters)} "
            f"characters (expected {alphabets} and {expected}), {len(wrong)} characters without "
            f"{IMAGES_PER_CHARACTER} drawings; delete it and download it again (download=True)"
        )
    return files, names, characters


class OmniglotRelease(Release):
    name = "omniglot"
    folder = "omniglot"
    title = "Omniglot"
    reference = "Lake et al. 2015, Human-level concept learning through probabilistic program induction"
    split_source = "Vinyals et al. 2016 by alphabet (as published with the Prototypical Networks code); or Lake's background/evaluation"
    image_size = 28
    channels = 1
    expected_classes: ClassVar[dict[str, int]] = {"train": 1028, "val": 172, "test": 423}

    @property
    def sources(self) -> tuple[Source, ...]:  # type: ignore[override]
        return tuple(Source(f"{part}.zip", (BASE_URL + f"{part}.zip",), md5=md5) for part, (md5, _, _) in PARTS.items())

    def check(self, splits: Sequence[str], where: Path) -> None:
        """Nothing to add: each part's alphabets, characters and drawings were counted as it was read."""

    def present(self, folder: Path) -> bool:
        return all((folder / part).is_dir() or (folder / f"{part}.zip").is_file() for part in PARTS)

    def decode(self, folder: Path, image_size: int, source: Path | None = None) -> Decoded:
        files: list[bytes] = []
        names: list[str] = []
        characters: list[str] = []
        parts: list[str] = []
        for part in PARTS:
            part_files, part_names, part_characters = _read_part(_find_source(source or folder, part), part)
            files += part_files
            names += part_names
            characters += part_characters
            parts += [part] * len(part_characters)
        images = decode_images(files, preprocessing(image_size), names=names, progress=True)
        labels = np.arange(len(characters)).repeat(IMAGES_PER_CHARACTER)
        return Decoded(images, labels, characters, {"part": parts})

    def class_splits(self, class_names: Sequence[str], class_info: dict[str, list[str]]) -> list[str]:
        return [vinyals_split(name) for name in class_names]


RELEASE = OmniglotRelease()


def load_omniglot(
    root: str | os.PathLike[str] | None = None,
    image_size: int = 28,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[ClassDataset, list[str]]:
    """All 1623 characters (background first) and the part each comes from, decoding on first use."""
    dataset, info = load_release(RELEASE, root, image_size, download, cache_dir)
    return dataset, info["part"]


class Omniglot(ClassDataset):
    """One split of Omniglot as a ``ClassDataset`` of ``image_size``-pixel images (ink = 255).

    ``scheme="vinyals"`` (train/val/test: 1028/172/423 characters, by alphabet) is the split of
    nearly every few-shot paper; ``scheme="lake"`` trains on the 30 background alphabets and tests on
    the 20 evaluation alphabets (it has no validation classes). ``rotations=True`` adds each
    character rotated by 90, 180 and 270 degrees as a new class, as the papers do.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        scheme: str = "vinyals",
        image_size: int = 28,
        rotations: bool = False,
        download: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if scheme not in SCHEMES:
            raise ConfigError(f"unknown Omniglot split scheme {scheme!r}; choose one of {SCHEMES}")
        if split not in SPLITS[scheme]:
            hint = " (the lake scheme has no validation classes)" if scheme == "lake" else ""
            raise ConfigError(f"unknown Omniglot split {split!r} for scheme {scheme!r}; choose one of {SPLITS[scheme]}{hint}")
        full, parts = load_omniglot(root, image_size, download, cache_dir)
        keep = [i for i, (name, part) in enumerate(zip(full.class_names, parts)) if _in_split(scheme, split, name, part)]
        chosen = full.subset(keep, name=f"omniglot-{scheme}-{split}")
        if rotations:
            chosen = chosen.with_rotations()
        super().__init__(chosen.images, chosen.labels, chosen.class_names, chosen.name)
        self.split, self.scheme, self.rotations = split, scheme, rotations
