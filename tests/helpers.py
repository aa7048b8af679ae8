"""Small builders shared by the tests."""

from __future__ import annotations

import importlib
import os
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from fastadapt.cli import main
from fastadapt.datasets import Glyphs
from fastadapt.datasets.base import ClassDataset
from fastadapt.errors import FastAdaptError
from fastadapt.logs import read_records
from fastadapt.tasks import TaskBatch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
user_models = importlib.import_module("models")  # examples/models.py: models as a user writes them


def random_dataset(
    classes: int = 12, per_class: int = 6, size: int = 16, channels: int = 1, seed: int = 0
) -> ClassDataset:
    generator = torch.Generator().manual_seed(seed)
    shape = (classes * per_class, channels, size, size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return ClassDataset(images, labels, [f"class{i:02d}" for i in range(classes)], name="random")


def to_double(batch: TaskBatch) -> TaskBatch:
    parts = (batch.support_x, batch.support_y, batch.query_x, batch.query_y)
    return TaskBatch(*(t.double() if t.is_floating_point() else t for t in parts))


def directional_fd(
    loss_fn: Callable[[], torch.Tensor | float],
    params: list[torch.Tensor],
    direction: list[torch.Tensor],
    eps: float = 1e-6,
) -> float:
    """Central finite difference of ``loss_fn()`` along ``direction`` (parameters moved in place).

    ``direction`` is used as given; scale it to unit norm so that the step stays far from the
    kinks of ReLU and max-pooling networks, where the MAML meta-loss is discontinuous.
    """
    with torch.no_grad():
        for p, d in zip(params, direction, strict=True):
            p.add_(eps * d)
        plus = float(loss_fn())
        for p, d in zip(params, direction, strict=True):
            p.sub_(2 * eps * d)
        minus = float(loss_fn())
        for p, d in zip(params, direction, strict=True):
            p.add_(eps * d)
    return (plus - minus) / (2 * eps)


def basis_directions(params: list[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    """The unit vector of each coordinate of ``params`` in turn: with ``directional_fd``, the whole gradient."""
    for i, p in enumerate(params):
        for k in range(p.numel()):
            direction = [torch.zeros_like(q) for q in params]
            direction[i].view(-1)[k] = 1.0
            yield direction


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
    print(
        f"\nfuzz {name}: {inputs} inputs, {total_bytes} bytes, "
        f"{refused} refused with DataError, {inputs - refused} read"
    )


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``fastadapt ARGV...`` in this process: its exit code, standard output and standard error."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_records(run: Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (``fastadapt.logs.read_records``), failing the test if a line is
    torn or not a record: a finished run's log has none left."""
    log = Path(run) / "metrics.jsonl"
    records = read_records(log)
    assert len(records) == len(log.read_text().splitlines()), f"{log} holds a torn line or one that is not a record"
    return records


@contextmanager
def raises_misuse(match: str) -> Iterator[None]:
    """Expect a ``ValueError`` that is no ``FastAdaptError``: a Python caller's mistake, which the CLI never
    turns into a one-line message because no config or data can cause it."""
    with pytest.raises(ValueError, match=match) as caught:
        yield
    assert not isinstance(caught.value, FastAdaptError), caught.value


def glyph_folders(glyphs_root: Path, root: Path, ways: int = 5, shots: int = 1, queries: int = 6) -> tuple[Path, Path]:
    """Test-script glyphs written as files the way a user has them: dark strokes on white PNGs."""
    test = Glyphs(glyphs_root, split="test")
    for c in range(ways):
        start = int(test.starts[c * 7])
        for i in range(shots + queries):
            folder = root / ("support" if i < shots else "query") / test.class_names[c * 7].replace("/", "-")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(255 - test.images[start + i, 0].numpy()).save(folder / f"{i}.png")
    return root / "support", root / "query"
