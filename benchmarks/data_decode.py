"""Decode time and cached open time of the benchmark datasets.

- Omniglot (real, the official zips in --data-dir): decoding all 32,460 PNGs to 28x28 with 1
  thread and with one per core, then opening the decoded cache in a fresh process.
- A miniImageNet-size synthetic release (--images, default 38,400 84x84 JPEGs in Ravi's
  ``images/`` + CSV layout, 64 classes): decoding it through ``MiniImageNet``, opening its
  cache (813 MB) in a fresh process, and the first 5-way 1-shot task drawn from it.

    python benchmarks/data_decode.py [--data-dir ../shared/data] [--images 38400] [--json]

Opening is timed in a new process each time (``python -c``), so it includes nothing this process
already loaded; the operating system's page cache is warm (the file was just written), as it is
for a dataset used every day.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, emit, parser
from PIL import Image

OPEN = """
import time
from pathlib import Path
start = time.perf_counter()
import fastadapt as fa
from fastadapt.datasets.cache import load_cache
imported = time.perf_counter()
dataset = {expr}
opened = time.perf_counter()
tasks = fa.FewShotTasks(dataset, 5, 1, 15, seed=0)
tasks.sample(1)
sampled = time.perf_counter()
print(imported - start, opened - imported, sampled - opened)
"""


def _open_in_fresh_process(expr: str, env: dict[str, str]) -> tuple[float, float]:
    """(seconds to open the dataset, seconds to draw the first task), measured in a new interpreter."""
    command = [sys.executable, "-c", OPEN.format(expr=expr)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env, cwd=REPO)
    _, opened, sampled = (float(v) for v in done.stdout.split())
    return opened, sampled


def _decode(release, folder: Path, size: int, workers: int) -> tuple[float, float]:
    """(seconds to decode the release, seconds to write its cache), with ``workers`` processes."""
    import torch

    from fastadapt.datasets import ClassDataset
    from fastadapt.datasets.cache import save_cache
    from fastadapt.datasets.release import cache_path

    os.environ["FASTADAPT_DECODE_WORKERS"] = str(workers)
    start = time.perf_counter()
    decoded = release.decode(folder, size)
    decoded_at = time.perf_counter()
    dataset = ClassDataset(torch.from_numpy(decoded.images), torch.from_numpy(decoded.labels), decoded.class_names)
    save_cache(cache_path(release, folder.parent, size), dataset, {"class_info": decoded.class_info})
    return decoded_at - start, time.perf_counter() - decoded_at


def _synthetic_mini(folder: Path, count: int, classes: int = 64) -> Path:
    """``count`` distinct 84x84 JPEGs in Ravi's layout, with their own split CSVs (all in train)."""
    per_class = count // classes
    splits = folder / "splits"
    (folder / "miniimagenet" / "images").mkdir(parents=True)
    splits.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (classes, 12, 12, 3), dtype=np.uint8)
    rows = []
    for c in range(classes):
        wnid = f"n{c + 1:08d}"
        small = Image.fromarray(base[c]).resize((84, 84), Image.BILINEAR)
        for k in range(per_class):
            name = f"{wnid}{k + 1:08d}.jpg"
            shifted = np.roll(np.asarray(small), k % 84, axis=1)
            buffer = io.BytesIO()
            Image.fromarray(shifted).save(buffer, format="JPEG", quality=90)
            (folder / "miniimagenet" / "images" / name).write_bytes(buffer.getvalue())
            rows.append((name, wnid))
    for split, part in (("train", rows), ("val", []), ("test", [])):
        with open(splits / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["filename", "label"])
            writer.writerows(part)
    return splits


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--images", type=int, default=38_400, help="images of the synthetic miniImageNet-size set")
    args = p.parse_args()
    from fastadapt.datasets.miniimagenet import MiniImageNet
    from fastadapt.datasets.omniglot import RELEASE as OMNIGLOT

    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "user-cache"), "PYTHONPATH": str(REPO / "src")}
        os.environ["XDG_CACHE_HOME"] = env["XDG_CACHE_HOME"]  # the decoded caches go to the temporary folder
        omniglot = args.data_dir / "omniglot"
        for workers in sorted({1, cores}):
            seconds, written = _decode(OMNIGLOT, omniglot, 28, workers)
            rows.append({
                "dataset": "Omniglot (real), 32,460 PNGs in 2 zips -> 28x28",
                "step": f"read + decode, {workers} process(es)",
                "ms": 1000 * seconds,
            })
        rows.append({"dataset": "Omniglot (real)", "step": "write cache", "ms": 1000 * written})
        opened, sampled = _open_in_fresh_process(f"fa.datasets.Omniglot({str(args.data_dir)!r}, split='all')", env)
        rows.append({"dataset": "Omniglot (real)", "step": "open cache (fresh process)", "ms": 1000 * opened})
        rows.append({"dataset": "Omniglot (real)", "step": "first 5w1s task", "ms": 1000 * sampled})

        splits = _synthetic_mini(work / "mini", args.images)
        release = MiniImageNet.release
        release.split_dir = splits
        release.expected_classes = {"train": 64, "val": 0, "test": 0}
        label = f"miniImageNet-size synthetic, {args.images:,} JPEGs 84x84"
        for workers in sorted({1, cores}):
            seconds, written = _decode(release, work / "mini" / "miniimagenet", 84, workers)
            rows.append({"dataset": label, "step": f"decode, {workers} process(es)", "ms": 1000 * seconds})
        rows.append({"dataset": label, "step": "write cache", "ms": 1000 * written})
        cache = next((work / "mini" / "miniimagenet").glob("miniimagenet-84px.pt"))
        opened, sampled = _open_in_fresh_process(f"load_cache(Path({str(cache)!r}), 'mini')[0]", env)
        rows.append({
            "dataset": f"{label}, cache {cache.stat().st_size / 2**20:,.0f} MiB",
            "step": "open cache (fresh process)",
            "ms": 1000 * opened,
        })
        rows.append({"dataset": label, "step": "first 5w1s task", "ms": 1000 * sampled})
    emit(rows, args.json, "Decoding the benchmarks once, and opening their caches")


if __name__ == "__main__":
    main()
