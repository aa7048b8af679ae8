"""MAML on a torchvision-style ResNet-18 (standard nn.BatchNorm2d), Omniglot 5-way 1-shot.

The model is the user's own (``models.py``: standard PyTorch layers only); fastadapt runs it as a
pure function, so its batch-norm layers normalize with each batch's statistics and its running
statistics stay untouched, and the second-order meta-gradient is exact.

    python examples/resnet18_maml_omniglot.py --data-dir ../shared/data          # under 10 minutes on 2 CPU cores
    python examples/resnet18_maml_omniglot.py --data-dir ../shared/data --width 64 --minutes 60   # torchvision's widths
"""

from __future__ import annotations

import argparse

import torch
from models import ResNet18

import fastadapt as fa


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir", default=None, help="folder holding omniglot/ (default: $FASTADAPT_DATA or the cache)"
    )
    parser.add_argument(
        "--download", action="store_true", help="fetch Omniglot from its official repository if missing"
    )
    parser.add_argument("--width", type=int, default=32, help="first stage's width (torchvision: 64)")
    parser.add_argument("--steps", type=int, default=100_000, help="meta-updates (training also stops after --minutes)")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--meta-batch", type=int, default=8)
    parser.add_argument("--val-episodes", type=int, default=50, help="validation tasks")
    parser.add_argument("--episodes", type=int, default=600, help="test tasks")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # the models' initial weights: the same numbers on every run

    def tasks(split: str, seed: int) -> fa.FewShotTasks:
        data = fa.datasets.Omniglot(args.data_dir, split=split, rotations=True, download=args.download)
        return fa.FewShotTasks(data, ways=5, shots=1, queries=15, seed=seed)

    learner = fa.MAML(ResNet18(num_classes=5, in_channels=1, width=args.width), inner_lr=0.1, inner_steps=1,
                      test_inner_steps=3)
    fa.meta_train(learner, tasks("train", 0), steps=args.steps, meta_batch=args.meta_batch, val_tasks=tasks("val", 1),
                  val_every=100, val_episodes=args.val_episodes, max_minutes=args.minutes)
    print("ResNet-18 MAML, Omniglot 5-way 1-shot:", fa.meta_test(learner, tasks("test", 2), episodes=args.episodes))


if __name__ == "__main__":
    main()
