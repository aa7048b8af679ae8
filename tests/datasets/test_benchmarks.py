"""The standard benchmarks, read from small copies in each release's exact on-disk format."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from pathlib import Path

import pytest
import torch
from releases import (
    CIFAR100,
    CUB_CLASSES,
    CUB_PER_CLASS,
    MINI_CLASSES,
    MINI_PER_CLASS,
    TIERED,
    TIERED_PER_CLASS,
    cifar_members,
    class_colour,
    mini_class_index,
    mini_split_files,
    write_cifar,
    write_cub,
    write_imagenet,
    write_mini_images,
    write_mini_pickles,
    write_tar,
    write_tiered,
)

import fastadapt as fa
from fastadapt.datasets import CIFARFS, CUB, FC100, MiniImageNet, TieredImageNet, catalog
from fastadapt.datasets.cifar import CIFAR_FS, FC100_SUPERCLASSES
from fastadapt.datasets.cub import chen_split
from fastadapt.datasets.miniimagenet import read_split
from fastadapt.datasets.release import cache_path
from fastadapt.errors import DataError


def _colours(dataset: fa.datasets.ClassDataset) -> list[tuple[int, ...]]:
    """The mean colour of each class's images (rounded): what identifies a fixture class."""
    out = []
    for c in range(dataset.num_classes):
        rows = dataset.images[int(dataset.starts[c]) : int(dataset.starts[c] + dataset.counts[c])]
        out.append(tuple(int(round(v)) for v in rows.double().mean(dim=(0, 2, 3)).tolist()))
    return out


def _close(found: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 3) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(found, expected, strict=True))


def _no_cache_left(root: Path) -> bool:
    """No decoded cache, finished or half-written, anywhere under the data root or the user cache."""
    caches = [p for base in (root, Path(os.environ["XDG_CACHE_HOME"])) if base.exists() for p in base.rglob("*.pt*")]
    return not caches


# -- miniImageNet ---------------------------------------------------------------------------------


@pytest.fixture
def mini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    """A data root, the fixture split installed as the split files, and the fixture's CSV rows."""
    rows = mini_split_files(tmp_path / "splits")
    monkeypatch.setattr(MiniImageNet.release, "split_dir", tmp_path / "splits")
    monkeypatch.setattr(MiniImageNet.release, "expected_classes", {s: len(w) for s, w in MINI_CLASSES.items()})
    return tmp_path / "root", rows


def test_the_shipped_miniimagenet_split_is_ravi_and_larochelles() -> None:
    """The gzipped CSVs in the package decompress to the published files (sha256 of the shared copies)."""
    published = {
        "train": "498519cd8e49ce97ed26a4a3638966698ae41ab35e9c68538319fc9b46ba7d2f",
        "val": "5658a59921ca027ee76af92949869c5d6f41d77592ff3b18db325a9d10c893b9",
        "test": "2b7cfa78342995761a572a8158e539bc4e0a80f9bbd7d00c1e17a460fbbb93fa",
    }
    folder = Path(fa.datasets.miniimagenet.__file__).parent / "splits" / "miniimagenet"
    classes = {}
    for split, digest in published.items():
        assert hashlib.sha256(gzip.decompress((folder / f"{split}.csv.gz").read_bytes())).hexdigest() == digest
        rows = read_split(split)
        classes[split] = {w for _, w in rows}
        assert len(rows) == 600 * len(classes[split])
    assert [len(classes[s]) for s in ("train", "val", "test")] == [64, 16, 20]
    train, val, test = classes["train"], classes["val"], classes["test"]
    assert not (train & val or train & test or val & test)


@pytest.mark.parametrize("val_name", ["val", "validation"])
def test_miniimagenet_from_the_zenodo_pickles(mini: tuple[Path, dict], val_name: str) -> None:
    root, _ = mini
    write_mini_pickles(root / "miniimagenet", val_name)
    index = mini_class_index()
    for split, wnids in MINI_CLASSES.items():
        dataset = MiniImageNet(root, split=split)
        assert dataset.class_names == wnids and dataset.image_shape == (3, 84, 84)
        assert dataset.counts.tolist() == [MINI_PER_CLASS] * len(wnids)
        assert _colours(dataset) == [class_colour(index[w]) for w in wnids]
    assert MiniImageNet(root, split="trainval").num_classes == 5


def test_miniimagenet_from_ravis_images_folder_and_resized(mini: tuple[Path, dict]) -> None:
    root, rows = mini
    write_mini_images(root / "miniimagenet", rows)
    dataset = MiniImageNet(root, split="test", image_size=32)
    assert dataset.image_shape == (3, 32, 32) and dataset.class_names == MINI_CLASSES["test"]
    index = mini_class_index()
    assert all(_close(c, class_colour(index[w])) for c, w in zip(_colours(dataset), MINI_CLASSES["test"], strict=True))


def test_miniimagenet_from_your_own_imagenet_follows_the_csv_numbering(mini: tuple[Path, dict], tmp_path: Path) -> None:
    """CSV image number k is the k-th file of the class in the order of its ImageNet number; the
    fixture's CSVs use even k, whose files are the coloured ones (odd ones are black)."""
    root, _ = mini
    write_imagenet(tmp_path / "ILSVRC2012_train")
    report = catalog.prepare("miniimagenet", root, source=tmp_path / "ILSVRC2012_train")
    assert report["splits"]["train"] == {"classes": 3, "images": 3 * MINI_PER_CLASS}
    dataset = MiniImageNet(root, split="train")
    index = mini_class_index()
    colours = _colours(dataset)
    assert all(_close(c, class_colour(index[w])) for c, w in zip(colours, MINI_CLASSES["train"], strict=True))


def test_miniimagenet_pickle_missing_a_class_is_refused_without_a_cache(mini: tuple[Path, dict]) -> None:
    root, _ = mini
    write_mini_pickles(root / "miniimagenet")
    path = root / "miniimagenet" / "mini-imagenet-cache-test.pkl"
    blob = pickle.loads(path.read_bytes())
    del blob["class_dict"][MINI_CLASSES["test"][0]]
    path.write_bytes(pickle.dumps(blob))
    with pytest.raises(DataError, match="not the test classes of the split"):
        MiniImageNet(root, split="train")
    assert _no_cache_left(root)


def test_miniimagenet_unreadable_image_is_named(mini: tuple[Path, dict]) -> None:
    root, rows = mini
    write_mini_images(root / "miniimagenet", rows)
    broken = root / "miniimagenet" / "images" / rows["val"][1][0]
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.raises(DataError, match=rows["val"][1][0]):
        MiniImageNet(root, split="val")
    assert _no_cache_left(root)


def test_miniimagenet_missing_image_and_missing_release(mini: tuple[Path, dict]) -> None:
    root, rows = mini
    with pytest.raises(DataError, match="miniImageNet is not in .*data prepare miniimagenet --download"):
        MiniImageNet(root)
    write_mini_images(root / "miniimagenet", rows)
    (root / "miniimagenet" / "images" / rows["train"][0][0]).unlink()
    with pytest.raises(DataError, match=r"1 images of class n01000001 are missing"):
        MiniImageNet(root)


def test_a_pickle_that_runs_code_is_refused(mini: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = mini
    write_mini_pickles(root / "miniimagenet")
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # what a malicious mirror could serve
            return (os.system, (f"touch {marker}",))

    (root / "miniimagenet" / "mini-imagenet-cache-train.pkl").write_bytes(pickle.dumps({"image_data": Exploit()}))
    with pytest.raises(DataError, match="refusing to load .*system"):
        MiniImageNet(root)
    assert not marker.exists() and _no_cache_left(root)


def test_the_cache_is_memory_mapped_and_reused(mini: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = mini
    write_mini_pickles(root / "miniimagenet")
    first = MiniImageNet(root, split="val")
    assert cache_path(MiniImageNet.release, root, 84).is_file()
    for pickled in (root / "miniimagenet").glob("*.pkl"):  # the cache alone suffices now
        pickled.unlink()

    def fail(*args: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(type(MiniImageNet.release), "decode", fail)
    again = MiniImageNet(root, split="val")
    assert torch.equal(again.images, first.images) and again.class_names == first.class_names


# -- tieredImageNet -------------------------------------------------------------------------------


@pytest.fixture
def tiered_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = {s: sum(len(m) for m in TIERED[s].values()) for s in TIERED}
    monkeypatch.setattr(TieredImageNet.release, "expected_classes", counts)


@pytest.mark.parametrize("layout", ["plain", "subfolder", "tar"])
def test_tieredimagenet_release_layouts(tmp_path: Path, tiered_counts: None, layout: str) -> None:
    root = tmp_path / "root"
    folder = root / "tieredimagenet"
    if layout == "plain":
        write_tiered(folder)
    elif layout == "subfolder":
        write_tiered(folder / "tiered-imagenet")
    else:
        write_tiered(tmp_path / "release" / "tiered-imagenet")
        files = (tmp_path / "release" / "tiered-imagenet").iterdir()
        members = {f"tiered-imagenet/{p.name}": p.read_bytes() for p in files}
        write_tar(folder / "tiered-imagenet.tar", members, mode="w")
    offset = 0
    for split, categories in TIERED.items():
        dataset = TieredImageNet(root, split=split)
        classes = [c for members in categories.values() for c in members]
        assert dataset.class_names == classes and dataset.counts.tolist() == [TIERED_PER_CLASS] * len(classes)
        assert _colours(dataset) == [class_colour(offset + i) for i in range(len(classes))]  # PNG: lossless
        assert dataset.class_info["category"] == [g for g, members in categories.items() for _ in members]
        offset += len(classes)


def test_tieredimagenet_tar_pointing_outside_is_refused(tmp_path: Path, tiered_counts: None) -> None:
    folder = tmp_path / "root" / "tieredimagenet"
    write_tar(folder / "tiered-imagenet.tar", {"tiered-imagenet/../../escape.pkl": b"x"}, mode="w")
    with pytest.raises(DataError, match="outside the destination"):
        TieredImageNet(tmp_path / "root")
    assert not (tmp_path / "escape.pkl").exists() and not (tmp_path / "root" / "escape.pkl").exists()
    assert not (folder / "extracted").exists() and _no_cache_left(tmp_path / "root")


def test_tieredimagenet_images_and_labels_must_agree(tmp_path: Path, tiered_counts: None) -> None:
    folder = tmp_path / "root" / "tieredimagenet"
    write_tiered(folder)
    images = pickle.loads((folder / "val_images_png.pkl").read_bytes())
    (folder / "val_images_png.pkl").write_bytes(pickle.dumps(images[:-1], protocol=2))
    with pytest.raises(DataError, match="does not match"):
        TieredImageNet(tmp_path / "root")


# -- CIFAR-FS and FC100 ---------------------------------------------------------------------------


def test_cifar_fs_and_fc100_splits_are_the_published_ones() -> None:
    names = {c for _, c in CIFAR100}
    assert len(names) == 100 and set(CIFAR_FS["val"]) | set(CIFAR_FS["test"]) <= names
    assert (len(CIFAR_FS["val"]), len(CIFAR_FS["test"])) == (16, 20)
    assert not set(CIFAR_FS["val"]) & set(CIFAR_FS["test"])
    coarse = sorted({s for s, _ in CIFAR100})
    assert [coarse.index(s) for s in FC100_SUPERCLASSES["val"]] == [8, 11, 13, 16]
    assert [coarse.index(s) for s in FC100_SUPERCLASSES["test"]] == [0, 7, 12, 14]


def test_cifar_fs_and_fc100_share_one_decoded_cifar100(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    write_cifar(root / "cifar100")
    fine = sorted(c for _, c in CIFAR100)
    sizes = {}
    for split in ("train", "val", "test"):
        dataset = CIFARFS(root, split=split)
        held_out = CIFAR_FS["val"] + CIFAR_FS["test"]
        expected = [n for n in fine if (n in CIFAR_FS.get(split, ())) or (split == "train" and n not in held_out)]
        assert dataset.class_names == expected and dataset.image_shape == (3, 32, 32)
        assert dataset.counts.tolist() == [3] * len(expected)  # 2 train + 1 test image of each class
        assert _colours(dataset) == [class_colour(fine.index(n)) for n in expected]
        sizes[split] = dataset.num_classes
    assert sizes == {"train": 64, "val": 16, "test": 20}

    def fail(*args: object) -> None:
        raise AssertionError("FC100 decoded CIFAR-100 again")

    monkeypatch.setattr(type(FC100.release).__mro__[1], "decode", fail)
    superclass = {c: s for s, c in CIFAR100}
    for split, count in (("train", 60), ("val", 20), ("test", 20)):
        dataset = FC100(root, split=split)
        assert dataset.num_classes == count
        wanted = FC100_SUPERCLASSES.get(split)
        held_out = FC100_SUPERCLASSES["val"] + FC100_SUPERCLASSES["test"]
        assert all(
            (superclass[n] in wanted) if wanted else (superclass[n] not in held_out) for n in dataset.class_names
        )


def test_cifar_from_the_extracted_folder(tmp_path: Path) -> None:
    folder = tmp_path / "root" / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, data in cifar_members().items():
        (folder / name).write_bytes(data)
    assert CIFARFS(tmp_path / "root", split="val", image_size=40).image_shape == (3, 40, 40)


@pytest.mark.parametrize("damage", ["truncated", "bytes", "missing member"])
def test_damaged_cifar_archives_are_refused_without_a_cache(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "root"
    archive = write_cifar(root / "cifar100")
    data = archive.read_bytes()
    if damage == "truncated":
        archive.write_bytes(data[: len(data) // 2])
    elif damage == "bytes":
        archive.write_bytes(data[:100] + bytes(200) + data[300:])
    else:
        write_tar(archive, {f"cifar-100-python/{k}": v for k, v in cifar_members().items() if k != "meta"})
    with pytest.raises(DataError, match="cifar-100-python.tar.gz"):
        CIFARFS(root)
    assert _no_cache_left(root)


# -- CUB ------------------------------------------------------------------------------------------


def test_chen_split_of_cub() -> None:
    splits = [chen_split(i) for i in range(200)]
    assert [splits.count(s) for s in ("train", "val", "test")] == [100, 50, 50]
    assert splits[:8] == ["train", "val", "train", "test", "train", "val", "train", "test"]
    assert splits[3] == "test"  # 004.Groove_billed_Ani, the first test species in the published lists


@pytest.mark.parametrize("packed", [False, True])
def test_cub_from_the_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packed: bool) -> None:
    monkeypatch.setattr(CUB.release, "expected_classes", {"train": 4, "val": 2, "test": 2})
    root = tmp_path / "root"
    top = write_cub(tmp_path / "release" if packed else root / "cub")
    if packed:
        files = [p for p in top.rglob("*") if p.is_file()]
        members = {f"CUB_200_2011/{p.relative_to(top).as_posix()}": p.read_bytes() for p in files}
        write_tar(root / "cub" / "CUB_200_2011.tgz", members)
    test = CUB(root, split="test")
    assert test.class_names == [CUB_CLASSES[3], CUB_CLASSES[7]] and test.image_shape == (3, 84, 84)
    assert test.counts.tolist() == [CUB_PER_CLASS, CUB_PER_CLASS]
    # the center crop drops the black border: the crop is the class colour throughout
    assert all(_close(c, class_colour(i), tolerance=4) for c, i in zip(_colours(test), (3, 7), strict=True))
    assert CUB(root, split="train").class_names == CUB_CLASSES[0::2]


def test_cub_missing_images_or_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CUB.release, "expected_classes", {"train": 4, "val": 2, "test": 2})
    root = tmp_path / "root"
    top = write_cub(root / "cub")
    victim = next((top / "images" / CUB_CLASSES[2]).iterdir())
    victim.unlink()
    with pytest.raises(DataError, match="missing from .*images"):
        CUB(root)
    lines = (top / "images.txt").read_text().splitlines()
    (top / "images.txt").write_text("\n".join(line for line in lines if CUB_CLASSES[2] not in line) + "\n")
    with pytest.raises(DataError, match=f"classes have no images, e.g. {CUB_CLASSES[2]}"):
        CUB(root)
    assert _no_cache_left(root)


def test_a_release_short_of_classes_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the real counts (100/50/50), an 8-species copy is not CUB."""
    write_cub(tmp_path / "root" / "cub")
    refusal = r"not the complete CUB-200-2011: classes per split \{'train': 4, 'val': 2, 'test': 2\}"
    with pytest.raises(DataError, match=refusal):
        CUB(tmp_path / "root")


# -- downloads ------------------------------------------------------------------------------------


def test_download_falls_back_to_the_next_mirror_and_checks_the_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastadapt.datasets import cifar
    from fastadapt.datasets.release import Source

    archive = write_cifar(tmp_path / "mirror")
    good = hashlib.md5(archive.read_bytes()).hexdigest()
    dead = (tmp_path / "nowhere" / archive.name).as_uri()
    monkeypatch.setattr(CIFARFS.release, "sources", (Source(archive.name, (dead, archive.as_uri()), md5=good),))
    assert CIFARFS(tmp_path / "root", split="test", download=True).num_classes == 20
    assert (tmp_path / "root" / "cifar100" / archive.name).is_file()

    monkeypatch.setattr(CIFARFS.release, "sources", (Source(archive.name, (archive.as_uri(),), md5="0" * 32),))
    with pytest.raises(DataError, match="failed its md5 check"):
        CIFARFS(tmp_path / "other", download=True)
    assert not any((tmp_path / "other").rglob("*.tar.gz*")) and _no_cache_left(tmp_path / "other")
    assert cifar.ARCHIVE.md5 == "eb9058c3a382ffc7106e4002c42a8d85"  # the published one is what users get


def test_benchmarks_train_through_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dataset.name=cifarfs builds tasks at the dataset's own size, with crop-and-flip on training tasks only."""
    from fastadapt.config import build_config, build_learner, build_tasks

    write_cifar(tmp_path / "root" / "cifar100")
    assert build_config(None, ["dataset.name=cifarfs", "dataset.image_size=null"]).dataset.image_size == 32  # type: ignore[attr-defined]
    overrides = [f"dataset.data_dir={tmp_path / 'root'}", "task.queries=2", "train_task.queries=2"]
    config = build_config("protonet-cifarfs-5w1s", overrides)
    assert config.dataset.image_size == 32 and config.train.augment == "crop_flip"  # type: ignore[attr-defined]
    train, test = build_tasks(config, "train", seed=0), build_tasks(config, "test", seed=0)
    assert train.augment is not None and test.augment is None
    batch = train.sample(2)
    assert batch.support_x.shape == (2, 20, 3, 32, 32)
    learner = build_learner(config)
    loss, _ = learner.meta_loss(batch)
    assert torch.isfinite(loss)
