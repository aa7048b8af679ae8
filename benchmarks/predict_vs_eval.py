"""Does `fastadapt predict` on real image files score what `fastadapt eval` reports?

Builds ``--tasks`` few-shot tasks from the real Omniglot test characters as the files a user would
have: the original 105x105 PNGs from ``images_evaluation.zip``, copied into ``support/<class>/``
and ``query/<class>/`` folders. Each task goes through ``predict_run`` (what ``fastadapt predict
RUN --support ... --query ...`` runs), and its accuracy is compared with the evaluator's on the
same kind of tasks: the run's test split with and without the rotated classes (the files are the
unrotated characters).

    python benchmarks/predict_vs_eval.py runs/cmp-protonet-omniglot-5w1s --tasks 200 --json
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
import zipfile
from pathlib import Path

import torch
from common import emit, parser

import fastadapt as fa
from fastadapt.config import build_tasks
from fastadapt.evaluate import mean_ci95
from fastadapt.experiment import load_learner
from fastadapt.predict import predict_run


def _character_files(data_dir: Path, classes: list[str]) -> dict[str, list[tuple[str, bytes]]]:
    wanted = set(classes)
    files: dict[str, list[tuple[str, bytes]]] = {}
    with zipfile.ZipFile(data_dir / "omniglot" / "images_evaluation.zip") as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if name.endswith(".png") and "/".join(parts[1:3]) in wanted:
                files.setdefault("/".join(parts[1:3]), []).append((parts[-1], archive.read(name)))
    return files


def _task_folders(
    root: Path, files: dict[str, list[tuple[str, bytes]]], rng: random.Random, ways: int, shots: int, queries: int
) -> tuple[Path, Path]:
    for character in rng.sample(sorted(files), ways):
        chosen = rng.sample(files[character], shots + queries)
        for i, (name, data) in enumerate(chosen):
            folder = root / ("support" if i < shots else "query") / character.replace("/", "-")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
    return root / "support", root / "query"


def main() -> None:
    p = parser(__doc__)
    p.add_argument("run", type=Path, help="a trained run folder on Omniglot")
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--episodes", type=int, default=600, help="evaluator episodes")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    learner, config = load_learner(args.run, data_dir=str(args.data_dir))
    ways, shots, queries = config.task.ways, config.task.shots, config.task.queries
    test = fa.datasets.Omniglot(args.data_dir, split="test", rotations=False, scheme=config.dataset.scheme)
    files = _character_files(args.data_dir, test.class_names)
    rng = random.Random(args.seed)
    accuracies = []
    with tempfile.TemporaryDirectory() as scratch:
        for t in range(args.tasks):
            support, query = _task_folders(Path(scratch) / str(t), files, rng, ways, shots, queries)
            accuracies.append(predict_run(args.run, support, [query]).accuracy)
    mean, ci, _ = mean_ci95(accuracies)
    rows = [{
        "how": f"fastadapt predict on real PNG files ({len(files)} unrotated test characters)",
        "tasks": args.tasks,
        "accuracy": round(100 * mean, 2),
        "ci95": round(100 * ci, 2),
    }]
    for rotations in (False, True):
        config = config.replace(dataset=dataclasses.replace(config.dataset, rotations=rotations))
        tasks = build_tasks(config, "test")
        result = fa.meta_test(learner, tasks, episodes=args.episodes, inner_steps=config.test.inner_steps)
        rows.append({"how": f"fastadapt eval, test split {'with' if rotations else 'without'} rotated classes "
                            f"({tasks.dataset.num_classes} classes)", "tasks": args.episodes,
                     "accuracy": round(100 * result.mean, 2), "ci95": round(100 * result.ci95, 2)})
    emit(rows, args.json, f"{args.run}: {ways}-way {shots}-shot, {queries} queries per class")


if __name__ == "__main__":
    main()
