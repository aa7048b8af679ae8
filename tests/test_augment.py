"""Training-time augmentation: crop-and-flip against a brute-force reference, and only on training tasks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import random_dataset

import fastadapt as fa
from fastadapt.augment import random_crop_flip


def _matches(original: torch.Tensor, out: torch.Tensor, pad: int) -> set[tuple[int, int, bool]]:
    """Every (dy, dx, flipped) whose crop of the zero-padded original equals ``out``."""
    padded = F.pad(original, (pad, pad, pad, pad))
    h, w = original.shape[-2:]
    found = set()
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[..., dy : dy + h, dx : dx + w]
            for flipped in (False, True):
                if torch.equal(crop.flip(-1) if flipped else crop, out):
                    found.add((dy, dx, flipped))
    return found


def test_each_image_is_a_padded_crop_possibly_mirrored() -> None:
    images = torch.rand(6, 4, 3, 9, 11)  # [tasks, images, C, H, W]; distinct pixels: one reading per output
    out = random_crop_flip(images, torch.Generator().manual_seed(0), padding=2)
    assert out.shape == images.shape
    seen = set()
    for original, result in zip(images.reshape(-1, 3, 9, 11), out.reshape(-1, 3, 9, 11), strict=True):
        match = _matches(original, result, 2)
        assert len(match) == 1
        seen |= match
    assert {flipped for _, _, flipped in seen} == {False, True} and len({(dy, dx) for dy, dx, _ in seen}) > 5


def test_the_generator_decides_everything() -> None:
    images = torch.rand(8, 3, 32, 32)
    one = random_crop_flip(images, torch.Generator().manual_seed(3))
    two = random_crop_flip(images, torch.Generator().manual_seed(3))
    assert torch.equal(one, two) and not torch.equal(one, random_crop_flip(images, torch.Generator().manual_seed(4)))


def test_only_sampled_training_tasks_are_augmented() -> None:
    dataset = random_dataset(classes=8, per_class=6, size=12, channels=3)
    plain = fa.FewShotTasks(dataset, ways=3, shots=1, queries=2, seed=1)
    augmented = fa.FewShotTasks(dataset, ways=3, shots=1, queries=2, seed=1, augment=random_crop_flip)
    for a, b in zip(plain.episodes(4), augmented.episodes(4), strict=True):
        assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    a, b = plain.sample(2), augmented.sample(2)
    assert torch.equal(a.support_y, b.support_y) and not torch.equal(a.support_x, b.support_x)
