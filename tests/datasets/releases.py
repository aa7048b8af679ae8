"""Small copies of the benchmark releases, written in each release's exact on-disk format.

Every image of class ``c`` is a flat colour that encodes ``c`` (``class_colour``), so a test can
check that images and labels stayed together through decoding, not only that the counts add up.
"""

from __future__ import annotations

import csv
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("train", "val", "test")


def class_colour(index: int) -> tuple[int, int, int]:
    return (20 + 7 * index) % 256, (200 - 5 * index) % 256, (60 + 11 * index) % 256


def flat_image(index: int, size: int, noise_seed: int | None = None) -> np.ndarray:
    """An ``[size, size, 3]`` image of class ``index``'s colour (with ±2 noise if seeded)."""
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = class_colour(index)
    if noise_seed is not None:
        noise = np.random.default_rng(noise_seed).integers(-2, 3, image.shape)
        image = np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)
    return image


def encode(image: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


# -- miniImageNet ---------------------------------------------------------------------------------

MINI_CLASSES = {
    "train": ["n01000001", "n01000002", "n01000003"],
    "val": ["n02000001", "n02000002"],
    "test": ["n03000001", "n03000002"],
}
MINI_PER_CLASS = 4


def mini_split_files(folder: Path) -> dict[str, list[tuple[str, str]]]:
    """Ravi-format CSVs (``filename,label``): class ``w`` uses image numbers 2, 4, 6, ... of its class."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = {}
    for split, wnids in MINI_CLASSES.items():
        rows[split] = [(f"{w}{2 * (k + 1):08d}.jpg", w) for w in wnids for k in range(MINI_PER_CLASS)]
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["filename", "label"])
            writer.writerows(rows[split])
    return rows


def mini_class_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(w for s in SPLITS for w in MINI_CLASSES[s])}


def write_mini_pickles(folder: Path, val_name: str = "val") -> None:
    """``mini-imagenet-cache-<split>.pkl`` as mirrored on Zenodo: image_data [n, 84, 84, 3] + class_dict."""
    folder.mkdir(parents=True, exist_ok=True)
    index = mini_class_index()
    for split, wnids in MINI_CLASSES.items():
        order = [w for w in reversed(wnids) for _ in range(MINI_PER_CLASS)]  # rows not sorted by class
        data = np.stack([flat_image(index[w], 84) for w in order])
        class_dict = {w: [i for i, x in enumerate(order) if x == w] for w in wnids}
        name = val_name if split == "val" else split
        with open(folder / f"mini-imagenet-cache-{name}.pkl", "wb") as handle:
            pickle.dump({"image_data": data, "class_dict": class_dict}, handle, protocol=4)


def write_mini_images(folder: Path, rows: dict[str, list[tuple[str, str]]]) -> None:
    """Ravi's release: a flat ``images/`` folder of 84x84 JPEGs named as in the CSVs."""
    index = mini_class_index()
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for split_rows in rows.values():
        for filename, wnid in split_rows:
            (folder / "images" / filename).write_bytes(encode(flat_image(index[wnid], 84), "JPEG"))


def write_imagenet(folder: Path, per_class: int = 10) -> None:
    """An ILSVRC-2012 train folder: ``<wnid>/<wnid>_<n>.JPEG`` with gaps in ``n``; the file at
    sorted position ``k`` (1-based) is coloured by class when ``k`` is even, black otherwise."""
    index = mini_class_index()
    for wnid, c in index.items():
        (folder / wnid).mkdir(parents=True, exist_ok=True)
        for k in range(1, per_class + 1):
            colour = flat_image(c, 120) if k % 2 == 0 else np.zeros((120, 160, 3), dtype=np.uint8)
            (folder / wnid / f"{wnid}_{k * 37 + 5}.JPEG").write_bytes(encode(colour, "JPEG"))


# -- tieredImageNet -------------------------------------------------------------------------------

TIERED = {  # split -> {category: classes}
    "train": {"n09000001": ["n01100001", "n01100002"], "n09000002": ["n01100003"]},
    "val": {"n09000003": ["n02100001", "n02100002"]},
    "test": {"n09000004": ["n03100001"], "n09000005": ["n03100002"]},
}
TIERED_PER_CLASS = 3


def write_tiered(folder: Path) -> None:
    """``<split>_images_png.pkl`` (PNG bytes as uint8 arrays) and ``<split>_labels.pkl``, Python-2 style pickles."""
    folder.mkdir(parents=True, exist_ok=True)
    offset = 0
    for split, categories in TIERED.items():
        classes = [c for members in categories.values() for c in members]
        category_names = list(categories)
        specific, general, images = [], [], []
        for _ in range(TIERED_PER_CLASS):
            for c, name in enumerate(classes):
                g = next(i for i, members in enumerate(categories.values()) if name in members)
                specific.append(c)
                general.append(g)
                images.append(np.frombuffer(encode(flat_image(offset + c, 84), "PNG"), dtype=np.uint8))
        offset += len(classes)
        labels = {"label_specific": np.asarray(specific), "label_general": np.asarray(general),
                  "label_specific_str": classes, "label_general_str": category_names}
        with open(folder / f"{split}_images_png.pkl", "wb") as handle:
            pickle.dump(images, handle, protocol=2)
        with open(folder / f"{split}_labels.pkl", "wb") as handle:
            pickle.dump(labels, handle, protocol=2)


# -- CIFAR-100 ------------------------------------------------------------------------------------

# The 100 CIFAR-100 classes by superclass, as the official meta file names them; CIFAR100 as (superclass, class).
CIFAR100_CLASSES = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
CIFAR100 = [(superclass, c) for superclass, classes in CIFAR100_CLASSES.items() for c in classes]


def cifar_members(per_class: tuple[int, int] = (2, 1)) -> dict[str, bytes]:
    """The three pickles of ``cifar-100-python/`` (Python-2 style, latin-1 strings), ``per_class``
    train and test images of each class."""
    fine_names = sorted(c for _, c in CIFAR100)
    coarse_names = sorted({s for s, _ in CIFAR100})
    superclass = dict((c, s) for s, c in CIFAR100)
    members = {"meta": pickle.dumps({"fine_label_names": fine_names, "coarse_label_names": coarse_names}, protocol=2)}
    for part, count in zip(("train", "test"), per_class, strict=True):
        fine = [f for _ in range(count) for f in range(len(fine_names))][::-1]
        rows = np.stack([flat_image(f, 32).transpose(2, 0, 1).reshape(-1) for f in fine])
        coarse = [coarse_names.index(superclass[fine_names[f]]) for f in fine]
        blob = {"data": rows, "fine_labels": fine, "coarse_labels": coarse, "filenames": [f"{i}.png" for i in fine]}
        members[part] = pickle.dumps(blob, protocol=2)
    return members


def write_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def write_cifar(folder: Path) -> Path:
    members = {f"cifar-100-python/{k}": v for k, v in cifar_members().items()}
    return write_tar(folder / "cifar-100-python.tar.gz", members)


# -- CUB-200-2011 ---------------------------------------------------------------------------------

CUB_CLASSES = [f"{i:03d}.Bird_{i}" for i in range(1, 9)]  # 8 species: Chen's split gives 4/2/2
CUB_PER_CLASS = 3


def write_cub(folder: Path) -> Path:
    """``CUB_200_2011/`` with classes.txt, images.txt, image_class_labels.txt and images/<class>/<file>.jpg."""
    top = folder / "CUB_200_2011"
    lines: dict[str, list[str]] = {"classes": [], "images": [], "labels": []}
    image_id = 0
    for c, name in enumerate(CUB_CLASSES):
        lines["classes"].append(f"{c + 1} {name}")
        (top / "images" / name).mkdir(parents=True, exist_ok=True)
        for k in range(CUB_PER_CLASS):
            image_id += 1
            relative = f"{name}/{name.split('.')[1]}_{k:04d}.jpg"
            picture = np.zeros((100, 140, 3), dtype=np.uint8)  # class colour in the middle, black border
            picture[4:96, 6:134] = class_colour(c)
            (top / "images" / relative).write_bytes(encode(picture, "JPEG"))
            lines["images"].append(f"{image_id} {relative}")
            lines["labels"].append(f"{image_id} {c + 1}")
    (top / "classes.txt").write_text("\n".join(lines["classes"]) + "\n")
    (top / "images.txt").write_text("\n".join(lines["images"]) + "\n")
    (top / "image_class_labels.txt").write_text("\n".join(lines["labels"]) + "\n")
    return top
