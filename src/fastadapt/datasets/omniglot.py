"""Omniglot (Lake et al. 2015): 1623 handwritten characters of 50 alphabets, 20 drawings each.

The official release is two zips, ``images_background.zip`` (30 alphabets, 964 characters) and
``images_evaluation.zip`` (20 alphabets, 659 characters). They are read in place (zip or extracted
folder), decoded once into a uint8 cache (ink bright on black, ``image_size`` pixels square) and
memory-mapped by later runs. The files are 1-bit, 105 pixels square: they are brought to ``image_size`` by
Lanczos filtering (gray edges), or by taking the nearest pixel (``resample="nearest"``), which is what the
papers' code got from Pillow and so what their numbers were measured on (strokes of 0 and 1 only).
"""

from __future__ import annotations

import os
import random
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np

from fastadapt.components import option, register
from fastadapt.datasets.archives import ARCHIVE_ERRORS
from fastadapt.datasets.base import ClassDataset
from fastadapt.datasets.imageconfig import ImageDatasetConfig
from fastadapt.datasets.images import Preprocessing, Resample, check_resample, decode_images
from fastadapt.datasets.release import Decoded, Release, Source, load_release
from fastadapt.errors import ConfigError, DataError

BASE_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
# part -> (md5 of the official zip, alphabets, characters); the md5s are those the release publishes.
PARTS = {
    "images_background": ("68d2efa1b9178cc56df9314c21c6e718", 30, 964),
    "images_evaluation": ("6b91aef0f799c5bb55b94e3f2daec811", 20, 659),
}
IMAGES_PER_CHARACTER = 20
CHARACTERS = sum(characters for _, _, characters in PARTS.values())  # 1623
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
Scheme = Literal["vinyals", "lake", "random"]
SCHEMES: tuple[str, ...] = get_args(Scheme)
SPLITS = {
    "vinyals": ("train", "val", "test", "trainval", "all"),
    "lake": ("train", "test", "all"),
    "random": ("train", "val", "test", "trainval", "all"),
}
# MAML's split (Finn et al. 2017, official code): 1200 meta-training characters, 1100 train + 100 val, 423 test.
RANDOM_SPLIT_SIZES = (1100, 100, 423)
ROTATION_SPLITS = ("train", "val", "test")


def vinyals_split(class_name: str) -> str:
    """``train``, ``val`` or ``test`` for a character named ``Alphabet/characterNN``."""
    alphabet, character = class_name.split("/")
    if alphabet == "Gurmukhi":
        return "test" if int(character.removeprefix("character")) >= 42 else "train"
    if alphabet in VINYALS_TEST:
        return "test"
    return "val" if alphabet in VINYALS_VAL else "train"


def check_split_sizes(sizes: Sequence[int], total: int = CHARACTERS, key: str = "split_sizes") -> None:
    """Refuse ``sizes`` that are not three non-negative integers (train, val, test), train and test positive,
    adding up to at most the ``total`` characters; one line naming ``key``."""
    values = list(sizes)
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    if len(values) != 3 or not integers or min(values) < 0 or values[0] == 0 or values[2] == 0:
        raise ConfigError(
            f"{key} must be three non-negative integers [train, val, test] with train and test > 0 "
            f"(val 0: no validation split), got {values!r}"
        )
    if sum(values) > total:
        raise ConfigError(f"{key} {values} adds up to {sum(values)} characters; Omniglot has {total}")


def random_split(class_names: Sequence[str], sizes: Sequence[int], seed: int) -> dict[str, list[str]]:
    """The papers' procedure: every character shuffled irrespective of alphabet, then cut into train, val and test.

    The names are sorted before a ``random.Random(seed)`` shuffle, so the split is the same on every machine.
    Reptile's code does exactly this (sorted alphabets and characters, Python's ``random`` seeded with its default
    ``--seed 0``): seed 0 and sizes (1200, 0, 423) give its very characters. MAML's and Relation Net's code shuffle
    the order ``os.listdir`` gave (seed 1), so their exact characters cannot be reproduced, only the procedure and
    the sizes. Characters past the three sizes belong to no split.
    """
    order = sorted(class_names)
    random.Random(seed).shuffle(order)
    train, val, test = sizes
    return {"train": order[:train], "val": order[train : train + val], "test": order[train + val : train + val + test]}


def _class_splits(
    scheme: str, names: Sequence[str], parts: Sequence[str], sizes: Sequence[int], seed: int
) -> list[str]:
    """The split of each character (``""``: none) under ``scheme``."""
    if scheme == "random":
        where = {name: split for split, members in random_split(names, sizes, seed).items() for name in members}
        return [where.get(name, "") for name in names]
    if scheme == "lake":
        return ["train" if part == "images_background" else "test" for part in parts]
    return [vinyals_split(name) for name in names]


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
                    raise DataError(
                        f"{source}: member {info.filename} is {info.file_size} bytes, too large for an Omniglot image"
                    )
                yield info.filename, archive.read(info)
    except ARCHIVE_ERRORS as error:
        raise DataError(
            f"{source} is not a readable zip archive ({error}): it is corrupt or truncated; "
            f"delete it and download it again (download=True)"
        ) from None


def preprocessing(image_size: int = 28, resample: str = "lanczos", invert: bool = True) -> Preprocessing:
    """Omniglot's files are black strokes on white: grayscale, inverted so that ink is bright (or, ``invert=False``,
    left dark on white as Reptile's code reads them)."""
    return Preprocessing(image_size=image_size, channels=1, invert=invert, resample=resample)


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
    split_source = (
        "Vinyals et al. 2016 by alphabet (as published with the Prototypical Networks code); Lake's "
        "background/evaluation; or a seeded random split of the characters (the procedure of MAML, Reptile and "
        "Relation Net)"
    )
    image_size = 28
    channels = 1
    expected_classes: ClassVar[dict[str, int]] = {"train": 1028, "val": 172, "test": 423}
    resample: ClassVar[str] = "lanczos"

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
        images = decode_images(files, preprocessing(image_size, self.resample), names=names, progress=True)
        labels = np.arange(len(characters)).repeat(IMAGES_PER_CHARACTER)
        return Decoded(images, labels, characters, {"part": parts})

    def class_splits(self, class_names: Sequence[str], class_info: dict[str, list[str]]) -> list[str]:
        return [vinyals_split(name) for name in class_names]


class NearestOmniglotRelease(OmniglotRelease):
    """The same files brought to size by the nearest pixel, decoded into a cache of their own."""

    resample = "nearest"
    cache_name = "omniglot-nearest"


RELEASE = OmniglotRelease()
RELEASE_BY_RESAMPLE: dict[str, OmniglotRelease] = {"lanczos": RELEASE, "nearest": NearestOmniglotRelease()}


def load_omniglot(
    root: str | os.PathLike[str] | None = None,
    image_size: int = 28,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    resample: str = "lanczos",
) -> tuple[ClassDataset, list[str]]:
    """All 1623 characters (background first) and the part each comes from, decoding on first use."""
    check_resample(resample)
    dataset, info = load_release(RELEASE_BY_RESAMPLE[resample], root, image_size, download, cache_dir)
    return dataset, info["part"]


class Omniglot(ClassDataset):
    """One split of Omniglot as a ``ClassDataset`` of ``image_size``-pixel images (ink = 255).

    ``scheme="vinyals"`` (train/val/test: 1028/172/423 characters, by alphabet) is the split of
    Matching and Prototypical Networks; ``scheme="lake"`` trains on the 30 background alphabets and tests
    on the 20 evaluation alphabets (it has no validation classes); ``scheme="random"`` shuffles all 1623
    characters irrespective of alphabet with ``split_seed`` and cuts them into ``split_sizes`` (train, val,
    test; MAML's 1100/100/423 by default, val 0 for no validation classes; see ``random_split``).
    ``rotations=True`` adds each character rotated by 90, 180 and 270 degrees as a new class. ``resample`` is how
    the files are brought to ``image_size`` (see the module's docstring); ``invert=False`` gives dark ink on white.
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
        split_sizes: Sequence[int] = RANDOM_SPLIT_SIZES,
        split_seed: int = 1,
        resample: str = "lanczos",
        invert: bool = True,
    ) -> None:
        _check_split(scheme, split, split_sizes)
        full, parts = load_omniglot(root, image_size, download, cache_dir, resample)
        if scheme == "random":
            check_split_sizes(split_sizes, total=full.num_classes)
        which = _class_splits(scheme, full.class_names, parts, split_sizes, split_seed)
        wanted = {"trainval": ("train", "val")}.get(split, (split,))
        keep = [i for i, part in enumerate(which) if split == "all" or part in wanted]
        chosen = full.subset(keep, name=f"omniglot-{scheme}-{split}")
        if rotations:
            chosen = chosen.with_rotations()
        images = chosen.images if invert else 255 - chosen.images  # the cache holds bright ink: flipped in memory
        super().__init__(images, chosen.labels, chosen.class_names, chosen.name)
        self.split, self.scheme, self.rotations = split, scheme, rotations


def _check_split(scheme: str, split: str, split_sizes: Sequence[int]) -> None:
    """Refuse an unknown scheme, or a split that the scheme (and, for ``random``, its sizes) does not have."""
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown Omniglot split scheme {scheme!r}; choose one of {SCHEMES}")
    if scheme == "random":
        check_split_sizes(split_sizes)
    no_validation = scheme == "random" and split_sizes[1] == 0
    splits = tuple(s for s in SPLITS[scheme] if s != "val" or not no_validation)
    if split not in splits:
        hint = {"lake": " (the lake scheme has no validation classes)"}.get(scheme, "")
        if no_validation and split == "val":
            hint = f" (split_sizes {list(split_sizes)} has no validation classes)"
        raise ConfigError(f"unknown Omniglot split {split!r} for scheme {scheme!r}; choose one of {splits}{hint}")


@register("dataset", "omniglot")
@dataclass
class OmniglotConfig(ImageDatasetConfig):
    """Omniglot under a split ``scheme`` (``vinyals``: train/val/test alphabets; ``lake``: background/evaluation,
    no validation split; ``random``: all characters shuffled with ``split_seed`` and cut into ``split_sizes``
    [train, val, test], val 0 for no validation split). ``rotations`` adds the rotated copies of every class as
    new classes in the splits of ``rotation_splits``; ``task_rotations`` rotates each class of each task by a
    random multiple of 90 degrees (``FewShotTasks(class_rotations=True)``), at every split. ``resample`` is how the
    1-bit files are brought to ``image_size``: ``lanczos`` (antialiased), or ``nearest`` (as the papers' code).
    ``invert: false`` leaves the ink dark on a white page, as Reptile's code feeds it (the zero padding of its
    convolutions then reads as ink).

    The papers' protocols: MAML ``scheme: random`` (``split_sizes`` [1100, 100, 423], ``split_seed`` 1) with
    ``task_rotations: true``; Reptile ``scheme: random``, ``split_sizes: [1200, 0, 423]``, ``split_seed: 0`` (its
    very characters, see ``random_split``), ``rotations: true``, ``rotation_splits: [train]``; all three papers
    (Prototypical Networks too) ``resample: nearest``, and Reptile ``invert: false``."""

    data_dir: str | None = None
    scheme: Scheme = "vinyals"
    split_sizes: list[int] = option(list(RANDOM_SPLIT_SIZES))
    split_seed: int = 1
    rotations: bool = False
    rotation_splits: list[str] = option(list(ROTATION_SPLITS))
    task_rotations: bool = False
    resample: Resample = "lanczos"
    invert: bool = True
    download: bool = False

    def validate(self) -> None:
        super().validate()
        check_split_sizes(self.split_sizes, key="dataset.split_sizes")
        unknown = [s for s in self.rotation_splits if s not in ROTATION_SPLITS]
        if unknown or len(set(self.rotation_splits)) != len(self.rotation_splits):
            raise ConfigError(
                f"dataset.rotation_splits must list distinct splits of {list(ROTATION_SPLITS)}, "
                f"got {self.rotation_splits!r}"
            )

    def classes(self, split: str) -> Omniglot:
        return Omniglot(self.data_dir, split=split, scheme=self.scheme, image_size=self.size,
                        rotations=self._rotated(split), download=self.download, split_sizes=self.split_sizes,
                        split_seed=self.split_seed, resample=self.resample, invert=self.invert)

    def task_options(self) -> dict[str, Any]:
        return {"class_rotations": self.task_rotations}

    def _rotated(self, split: str) -> bool:
        """Whether ``split`` gets the rotated copies; a split that joins others (``trainval``, ``all``) gets them
        where all of its parts do, and is refused where only some do."""
        parts = {"trainval": ("train", "val"), "all": ROTATION_SPLITS}.get(split, (split,))
        chosen = [part in self.rotation_splits for part in parts]
        if self.rotations and any(chosen) and not all(chosen):
            raise ConfigError(
                f"dataset.rotation_splits={self.rotation_splits} rotates only part of the {split} split: "
                "load its parts one by one"
            )
        return self.rotations and all(chosen)

    def preprocessing(self) -> Preprocessing:
        return preprocessing(self.size, self.resample, self.invert)

    def has_validation(self) -> bool:
        return self.scheme == "vinyals" or (self.scheme == "random" and self.split_sizes[1] > 0)
