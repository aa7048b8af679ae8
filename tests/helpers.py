"""Small builders shared by the tests."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import torch

from fastadapt.datasets.base import ClassDataset
from fastadapt.tasks import TaskBatch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import models as user_models  # noqa: E402  (examples/models.py: models as a user writes them)


def random_dataset(classes: int = 12, per_class: int = 6, size: int = 16, channels: int = 1, seed: int = 0) -> ClassDataset:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (classes * per_class, channels, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return ClassDataset(images, labels, [f"class{i:02d}" for i in range(classes)], name="random")


def to_double(batch: TaskBatch) -> TaskBatch:
    return TaskBatch(*(t.double() if t.is_floating_point() else t for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y)))


def directional_fd(loss_fn, params: list[torch.Tensor], direction: list[torch.Tensor], eps: float = 1e-6) -> float:
    """Central finite difference of ``loss_fn()`` along ``direction`` (parameters moved in place).

    ``direction`` is used as given; scale it to unit norm so that the step stays far from the
    kinks of ReLU and max-pooling networks, where the MAML meta-loss is discontinuous.
    """
    with torch.no_grad():
        for p, d in zip(params, direction):
            p.add_(eps * d)
        plus = float(loss_fn())
        for p, d in zip(params, direction):
            p.sub_(2 * eps * d)
        minus = float(loss_fn())
        for p, d in zip(params, direction):
            p.add_(eps * d)
    return (plus - minus) / (2 * eps)


def unit_directions(params: list[torch.Tensor], count: int, seed: int = 7) -> list[list[torch.Tensor]]:
    """``count`` random directions in parameter space, each of Euclidean norm 1."""
    generator = torch.Generator().manual_seed(seed)
    directions = []
    for _ in range(count):
        d = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in params]
        norm = torch.sqrt(sum((x * x).sum() for x in d))
        directions.append([x / norm for x in d])
    return directions


FUZZ_SCALE = int(os.environ.get("FASTADAPT_FUZZ_SCALE", "1"))  # multiply the fuzz tests' trials for long runs


def mutated(rng: random.Random, data: bytes, cut: bool) -> bytes:
    """``data`` with 1 to 8 bytes overwritten at random, and with ``cut`` also truncated."""
    damaged = bytearray(data)
    for _ in range(rng.randrange(1, 9)):
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
    return bytes(damaged[: rng.randrange(1, len(damaged))] if cut else damaged)


def report_fuzz(name: str, inputs: int, total_bytes: int, refused: int) -> None:
    """One line for docs/RELIABILITY.md (shown with ``pytest -s``)."""
    print(f"\nfuzz {name}: {inputs} inputs, {total_bytes} bytes, {refused} refused with DataError, {inputs - refused} read")
