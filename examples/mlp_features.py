"""Few-shot classification of float feature vectors with an MLP: MAML and ProtoNet.

The data stand in for embeddings from a pretrained network: 600 classes, each a Gaussian cluster
in 32 dimensions whose covariance differs per class (a linear map of shared noise), 20 vectors
per class, split 400/100/100 by class. They are float tensors in a ``ClassDataset``; any ``[n, d]``
tensor of yours, or any ``(x, label)`` torch ``Dataset``, works the same way.

    python examples/mlp_features.py           # about 2 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse

import torch
from models import mlp

import fastadapt as fa

DIM, CLASSES, PER_CLASS = 32, 600, 20


def clusters(seed: int = 0) -> fa.datasets.ClassDataset:
    """``CLASSES`` Gaussian clusters of ``PER_CLASS`` float vectors each."""
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(CLASSES, 1, DIM, generator=generator)
    mixing = torch.randn(CLASSES, DIM, DIM, generator=generator) / DIM**0.5
    noise = torch.randn(CLASSES, PER_CLASS, DIM, generator=generator)
    features = means + 1.5 * noise @ mixing
    labels = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
    return fa.datasets.ClassDataset(features.reshape(-1, DIM), labels, [f"c{i}" for i in range(CLASSES)], "clusters")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--meta-batch", type=int, default=16)
    parser.add_argument("--val-episodes", type=int, default=100, help="validation tasks")
    parser.add_argument("--episodes", type=int, default=600, help="test tasks")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # the models' initial weights: the same numbers on every run
    data = clusters()
    splits = {"train": range(400), "val": range(400, 500), "test": range(500, 600)}
    tasks = {name: fa.FewShotTasks(data.subset(list(rows)), ways=5, shots=1, queries=15, seed=i)
             for i, (name, rows) in enumerate(splits.items())}
    learners = {
        "MAML": fa.MAML(mlp(DIM, 5, hidden=64), inner_lr=0.4, inner_steps=1, test_inner_steps=3),
        "ProtoNet": fa.ProtoNet(mlp(DIM, 32, hidden=64)),
    }
    for name, learner in learners.items():
        fa.meta_train(learner, tasks["train"], steps=args.steps, meta_batch=args.meta_batch, val_tasks=tasks["val"],
                      val_every=250, val_episodes=args.val_episodes, progress=False)
        print(f"{name} on float features, 5-way 1-shot:", fa.meta_test(learner, tasks["test"], episodes=args.episodes))


if __name__ == "__main__":
    main()
