"""Tasks: a support set to learn from and a query set to be judged on; N-way K-shot sampling."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

import torch
from torch import Tensor
from torch.utils.data import Dataset

from fastadapt.datasets.base import ClassDataset
from fastadapt.datasets.labelled import LabelledDataset
from fastadapt.errors import ConfigError

EXAMPLES = ("support_x", "support_y", "query_x", "query_y")


def ways_of(labels: Tensor) -> int:
    """The number of classes of task labels ``0..ways-1`` (the largest label plus one): how a method that is
    not told ``ways`` sizes its outputs."""
    return int(labels.max()) + 1


def _check_pair(kind: str, x: Tensor, y: Tensor, dim: int) -> None:
    """Refuse examples ``x`` and labels ``y`` of different counts along ``dim``."""
    if x.dim() <= dim or y.dim() <= dim or x.shape[dim] != y.shape[dim]:
        raise ValueError(
            f"{kind}_x and {kind}_y must hold the same number of examples: got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )


_Tensors = TypeVar("_Tensors", bound="_TaskTensors")


@dataclass
class _TaskTensors:
    """The tensors of a task or of a batch of tasks, their checks and their move to a device.

    ``example_dim`` is where the examples are: dimension 0 in a ``Task``, 1 in a ``TaskBatch``
    (after the task dimension). Mismatched tensors are a caller's mistake: ``ValueError``.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    classes: Tensor | None = None

    example_dim: ClassVar[int] = 0

    def __post_init__(self) -> None:
        _check_pair("support", self.support_x, self.support_y, self.example_dim)
        _check_pair("query", self.query_x, self.query_y, self.example_dim)

    def to(self: _Tensors, device: torch.device | str) -> _Tensors:
        """The same task(s) with every tensor on ``device``."""
        classes = None if self.classes is None else self.classes.to(device)
        return type(self)(**{name: getattr(self, name).to(device) for name in EXAMPLES}, classes=classes)


@dataclass
class Task(_TaskTensors):
    """One learning problem: ``support_x [S, ...]``, ``support_y [S]``, ``query_x [Q, ...]``, ``query_y [Q]``.

    ``classes [ways]``, where known, holds the dataset class behind each task label (label ``i``
    is dataset class ``classes[i]``): what supervised pre-training (``FineTune``) learns from.
    """


@dataclass
class TaskBatch(_TaskTensors):
    """A batch of tasks of the same size, each tensor with a leading task dimension ``T``.

    ``batch[i]`` is the i-th ``Task``; ``batch[i:j]`` a smaller ``TaskBatch``. ``classes [T, ways]``
    (optional) holds the dataset class behind each task's labels, as in ``Task``.
    """

    example_dim: ClassVar[int] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        tensors = [getattr(self, name) for name in EXAMPLES] + ([self.classes] if self.classes is not None else [])
        sizes = {t.shape[0] for t in tensors}
        if len(sizes) != 1:
            raise ValueError(
                f"every tensor of a TaskBatch needs the same leading task dimension, got sizes {sorted(sizes)}"
            )

    def __len__(self) -> int:
        return self.support_x.shape[0]

    @overload
    def __getitem__(self, index: int) -> Task: ...

    @overload
    def __getitem__(self, index: slice) -> TaskBatch: ...

    def __getitem__(self, index: int | slice) -> Task | TaskBatch:
        parts = {name: getattr(self, name)[index] for name in EXAMPLES}
        classes = None if self.classes is None else self.classes[index]
        return TaskBatch(**parts, classes=classes) if isinstance(index, slice) else Task(**parts, classes=classes)

    def __iter__(self) -> Iterator[Task]:
        return (self[i] for i in range(len(self)))

    def replace_labels(self, support_y: Tensor, query_y: Tensor) -> TaskBatch:
        """The same tasks with other labels (e.g. dataset classes instead of task labels)."""
        return TaskBatch(self.support_x, support_y, self.query_x, query_y, self.classes)

    @staticmethod
    def cat(batches: Sequence[TaskBatch]) -> TaskBatch:
        """Concatenate batches of equal task sizes along the task dimension."""
        if len(batches) == 1:
            return batches[0]
        parts = {name: torch.cat([getattr(b, name) for b in batches]) for name in EXAMPLES}
        classes = [b.classes for b in batches if b.classes is not None]
        return TaskBatch(**parts, classes=torch.cat(classes) if len(classes) == len(batches) else None)

    @staticmethod
    def stack(tasks: Sequence[Task]) -> TaskBatch:
        """Stack tasks of equal sizes into a batch."""
        if not tasks:
            raise ValueError("TaskBatch.stack needs at least one task")
        try:
            parts = {name: torch.stack([getattr(t, name) for t in tasks]) for name in EXAMPLES}
            classes = [t.classes for t in tasks if t.classes is not None]
            return TaskBatch(**parts, classes=torch.stack(classes) if len(classes) == len(tasks) else None)
        except RuntimeError as error:
            raise ValueError(f"tasks in a batch must have the same support and query sizes: {error}") from None


class TaskDistribution:
    """A seeded source of tasks: ``sample(n)`` draws from a checkpointable stream,
    ``episodes(count)`` replays a fixed sequence from ``seed`` for evaluation.

    A new task family (``FewShotTasks`` and ``SinusoidTasks`` are two) is a subclass that:

    - sets ``self.seed`` and ``self.generator = torch.Generator().manual_seed(seed)`` in ``__init__``;
    - implements ``_draw(n, generator) -> TaskBatch``: ``n`` tasks of the same sizes, drawing every
      random number from ``generator`` (``torch.rand(..., generator=generator)``), never from torch's
      global random state. ``sample`` passes the sampler's own generator (so ``state_dict`` resumes
      the stream exactly) and ``episodes`` a fresh one seeded per call (so evaluation replays the
      same tasks and never moves the training stream). ``_draw`` must not keep state between calls.

    For example, linear regression ``y = w x + b`` with ``w, b`` drawn per task::

        class LinearTasks(TaskDistribution):
            def __init__(self, shots: int = 5, queries: int = 5, seed: int = 0) -> None:
                self.shots, self.queries, self.seed = shots, queries, seed
                self.generator = torch.Generator().manual_seed(seed)

            def _draw(self, n: int, generator: torch.Generator) -> TaskBatch:
                w, b = torch.randn(2, n, 1, 1, generator=generator)
                x = torch.rand(n, self.shots + self.queries, 1, generator=generator) * 10 - 5
                y = w * x + b
                return TaskBatch(x[:, : self.shots], y[:, : self.shots], x[:, self.shots :], y[:, self.shots :])
    """

    seed: int
    generator: torch.Generator

    def _draw(self, n: int, generator: torch.Generator) -> TaskBatch:
        """``n`` tasks, every random number drawn from ``generator``: what a subclass implements (see the class)."""
        raise NotImplementedError

    def sample(self, n: int = 1) -> TaskBatch:
        """Draw ``n`` tasks from the sampler's stream."""
        if n < 1:
            raise ValueError(f"sample needs n >= 1, got {n}")
        return self._draw(n, self.generator)

    def episodes(self, count: int, batch_size: int = 32, seed: int | None = None) -> Iterator[TaskBatch]:
        """A fixed sequence of ``count`` tasks, in batches, replayed identically from ``seed``.

        Tasks are drawn one by one, so the sequence does not depend on ``batch_size``, and from
        their own generator, so evaluating never moves the training sampler.
        """
        if count < 1 or batch_size < 1:
            raise ValueError(f"episodes needs count >= 1 and batch_size >= 1, got {count} and {batch_size}")
        generator = torch.Generator().manual_seed(self.seed if seed is None else seed)
        for start in range(0, count, batch_size):
            tasks = [self._draw(1, generator) for _ in range(min(batch_size, count - start))]
            yield type(tasks[0]).cat(tasks)

    def state_dict(self) -> dict[str, Tensor]:
        """The sampler's position in its stream, for exact resumption."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])


class FewShotTasks(TaskDistribution):
    """N-way K-shot classification tasks drawn from a ``ClassDataset`` or any map-style torch ``Dataset``.

    A task picks ``ways`` classes at random, and from each ``shots`` support and ``queries`` query
    examples, all distinct; the classes get labels ``0..ways-1`` in a random order per task.
    A ``Dataset`` of ``(x, label)`` pairs is wrapped in a ``LabelledDataset``: its labels are read
    once, its examples only when a task needs them; the same data in the same order as a
    ``ClassDataset`` gives the same tasks. Images (uint8 ``[C, H, W]``) come as float in [0, 1],
    other examples as they are (int64 token ids stay int64).
    ``sample(n)`` draws from the sampler's seeded stream (checkpointed with the run);
    ``episodes(count)`` replays a fixed sequence from ``seed``, so that every run and every method
    is tested on the same tasks. ``augment(examples, generator)`` transforms the support and query
    examples of ``sample`` (training) with the sampler's own random stream (e.g. ``random_crop_flip``
    for images); ``episodes`` (evaluation) are never augmented. ``class_rotations=True`` rotates the
    support and query examples of each class of each task by the same random multiple of 90 degrees
    (examples ``[..., H, W]``, square), drawn from the task's own generator, in ``sample`` and ``episodes``
    alike (MAML's Omniglot protocol); off, the draws are those of a sampler without the option.
    """

    def __init__(
        self,
        dataset: ClassDataset | LabelledDataset | Dataset[Any],
        ways: int,
        shots: int,
        queries: int = 15,
        seed: int = 0,
        device: torch.device | str | None = None,
        augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
        class_rotations: bool = False,
    ) -> None:
        for label, value, low in (("ways", ways, 2), ("shots", shots, 1), ("queries", queries, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{label} must be an integer of at least {low}, got {value!r}")
        if not isinstance(dataset, (ClassDataset, LabelledDataset)):
            dataset = LabelledDataset(dataset)
        per_task = shots + queries
        eligible = (dataset.counts >= per_task).nonzero().flatten()
        if len(eligible) < ways:
            most = int(dataset.counts.max())
            raise ConfigError(
                f"{ways}-way tasks with {shots} shots + {queries} queries need {ways} classes of at least "
                f"{per_task} examples; {dataset.name or 'the dataset'} has {len(eligible)} such classes "
                f"({dataset.num_classes} classes, at most {most} examples per class): lower ways, shots or queries"
            )
        self.dataset = dataset
        self.ways, self.shots, self.queries = ways, shots, queries
        self.seed = seed
        self.device = torch.device(device) if device is not None else None
        self._eligible = eligible
        self._max_count = int(dataset.counts[eligible].max())
        self.generator = torch.Generator().manual_seed(seed)
        self.augment = augment
        self.class_rotations = class_rotations
        if class_rotations:
            _check_rotatable(dataset.gather(dataset.starts[eligible[:1]]).shape[1:])

    def __repr__(self) -> str:
        return (
            f"FewShotTasks({self.dataset!r}, ways={self.ways}, shots={self.shots}, "
            f"queries={self.queries}, seed={self.seed}{', class_rotations=True' if self.class_rotations else ''})"
        )

    def _draw(self, n: int, generator: torch.Generator) -> TaskBatch:
        ways, shots, per_task = self.ways, self.shots, self.shots + self.queries
        data = self.dataset
        # Classes: the `ways` largest of uniform keys, in random order.
        pick = torch.rand(n, len(self._eligible), generator=generator).topk(ways, dim=1).indices
        classes = self._eligible[pick]
        # Examples: the `per_task` smallest keys among each class's rows (keys past its count masked).
        keys = torch.rand(n, ways, self._max_count, generator=generator)
        keys.masked_fill_(torch.arange(self._max_count) >= data.counts[classes][..., None], 2.0)
        position = keys.topk(per_task, dim=2, largest=False).indices
        rows = data.starts[classes][..., None] + position
        labels = torch.arange(ways)
        support = data.gather(rows[:, :, :shots], self.device)
        query = data.gather(rows[:, :, shots:], self.device)
        if self.class_rotations:
            turns = torch.randint(4, (n, ways), generator=generator)
            support, query = rotate_classes(support, turns), rotate_classes(query, turns)
        support, query = support.flatten(1, 2), query.flatten(1, 2)
        if self.augment is not None and generator is self.generator:
            support, query = self.augment(support, generator), self.augment(query, generator)
        return TaskBatch(
            support,
            labels.repeat_interleave(shots).repeat(n, 1).to(self.device),
            query,
            labels.repeat_interleave(self.queries).repeat(n, 1).to(self.device),
            classes.to(self.device),
        )


def _check_rotatable(example_shape: Sequence[int]) -> None:
    """Refuse class rotations of examples that are not square ``[..., H, W]``."""
    if len(example_shape) < 2 or example_shape[-1] != example_shape[-2]:
        raise ConfigError(
            f"class_rotations needs square examples [..., H, W], got examples of shape {list(example_shape)}"
        )


def rotate_classes(examples: Tensor, turns: Tensor) -> Tensor:
    """``examples [n, ways, m, ..., H, W]`` with those of task ``i``, class ``j`` rotated by ``turns[i, j]``
    quarter turns (counter-clockwise, as ``torch.rot90``)."""
    rotated = examples.clone()
    turns = turns.to(examples.device)
    for k in (1, 2, 3):
        chosen = turns == k
        rotated[chosen] = torch.rot90(examples[chosen], k, dims=(-2, -1))
    return rotated
