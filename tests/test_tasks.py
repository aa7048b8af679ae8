"""Task sampling: shapes, labels, disjointness, determinism, and clear errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import raises_misuse, random_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

import fastadapt as fa
from fastadapt.errors import ConfigError, DataError
from fastadapt.tasks import ways_of


def _rows(batch_x: torch.Tensor, dataset: fa.datasets.ClassDataset) -> list[int]:
    """The dataset row of each image (images are unique random noise)."""
    flat = (dataset.images.flatten(1).float() / 255)
    return [int(torch.nonzero((flat == x.flatten()).all(dim=1))[0]) for x in batch_x]


def test_shapes_and_labels() -> None:
    dataset = random_dataset(classes=10, per_class=8, size=16)
    batch = fa.FewShotTasks(dataset, ways=5, shots=2, queries=3, seed=0).sample(4)
    assert batch.support_x.shape == (4, 10, 1, 16, 16) and batch.query_x.shape == (4, 15, 1, 16, 16)
    assert batch.support_x.dtype == torch.float32 and 0 <= batch.support_x.min() and batch.support_x.max() <= 1
    assert batch.support_y.tolist() == [[0, 0, 1, 1, 2, 2, 3, 3, 4, 4]] * 4
    assert batch.query_y.tolist() == [[c for c in range(5) for _ in range(3)]] * 4
    assert len(batch) == 4 and isinstance(batch[1], fa.Task) and len(batch[1:3]) == 2


@settings(max_examples=25, deadline=None)
@given(ways=st.integers(2, 6), shots=st.integers(1, 3), queries=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_every_task_is_a_valid_few_shot_problem(ways: int, shots: int, queries: int, seed: int) -> None:
    dataset = random_dataset(classes=8, per_class=6, size=8)
    task = fa.FewShotTasks(dataset, ways=ways, shots=shots, queries=queries, seed=seed).sample(1)[0]
    again = fa.FewShotTasks(dataset, ways=ways, shots=shots, queries=queries, seed=seed).sample(1)[0]
    fields = ("support_x", "support_y", "query_x", "query_y")
    assert all(torch.equal(getattr(task, name), getattr(again, name)) for name in fields)
    assert task.support_y.bincount(minlength=ways).tolist() == [shots] * ways
    assert task.query_y.bincount(minlength=ways).tolist() == [queries] * ways
    support, query = _rows(task.support_x, dataset), _rows(task.query_x, dataset)
    assert not set(support) & set(query)
    assert len(set(support)) == len(support) and len(set(query)) == len(query)
    # each task label is one dataset class, the same one in support and query
    classes = {}
    for row, label in zip(support + query, task.support_y.tolist() + task.query_y.tolist(), strict=True):
        classes.setdefault(label, set()).add(int(dataset.labels[row]))
    assert sorted(classes) == list(range(ways)) and all(len(c) == 1 for c in classes.values())
    assert len({next(iter(c)) for c in classes.values()}) == ways


def test_label_order_is_random_per_task() -> None:
    dataset = random_dataset(classes=6, per_class=4, size=8)
    batch = fa.FewShotTasks(dataset, ways=3, shots=1, queries=1, seed=0).sample(30)
    first_class = {int(dataset.labels[_rows(task.support_x[:1], dataset)[0]]) for task in batch}
    assert len(first_class) > 1


def test_sampling_is_reproducible_from_the_seed_and_resumable() -> None:
    dataset = random_dataset()
    a, b = fa.FewShotTasks(dataset, 4, 1, 2, seed=5), fa.FewShotTasks(dataset, 4, 1, 2, seed=5)
    torch.testing.assert_close(a.sample(3).query_x, b.sample(3).query_x)
    state = a.state_dict()
    expected = a.sample(2).support_x
    b.load_state_dict(state)
    torch.testing.assert_close(b.sample(2).support_x, expected)
    six, five = fa.FewShotTasks(dataset, 4, 1, 2, seed=6), fa.FewShotTasks(dataset, 4, 1, 2, seed=5)
    assert not torch.equal(six.sample(3).query_x, five.sample(3).query_x)


def test_episodes_are_fixed_and_independent_of_sampling() -> None:
    tasks = fa.FewShotTasks(random_dataset(), 4, 1, 2, seed=3)
    first = torch.cat([b.support_x for b in tasks.episodes(10, batch_size=4)])
    tasks.sample(7)
    again = torch.cat([b.support_x for b in tasks.episodes(10, batch_size=3)])
    assert first.shape[0] == 10
    torch.testing.assert_close(first, again)


def test_unequal_class_sizes_only_use_classes_with_enough_images() -> None:
    images = torch.arange(13, dtype=torch.uint8).view(13, 1, 1, 1).expand(13, 1, 2, 2).contiguous()
    labels = torch.tensor([0] * 5 + [1] * 2 + [2] * 6)
    dataset = fa.datasets.ClassDataset(images, labels, ["a", "b", "c"])
    batch = fa.FewShotTasks(dataset, ways=2, shots=2, queries=2, seed=0).sample(20)
    values = set((torch.cat([batch.support_x, batch.query_x], 1) * 255).round().long().flatten().tolist())
    assert not values & {5, 6}  # class b has only 2 images


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ways=13, shots=1, queries=1), "13-way tasks .* need 13 classes"),
        (dict(ways=5, shots=5, queries=5), "at least 10 examples"),
        (dict(ways=5, shots=0, queries=5), "shots must be an integer of at least 1"),
        (dict(ways=1, shots=1, queries=5), "ways must be an integer of at least 2"),
    ],
)
def test_impossible_tasks_name_the_problem(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fa.FewShotTasks(random_dataset(classes=12, per_class=6), **kwargs)


def test_user_built_batches_are_checked_as_a_callers_mistakes() -> None:
    x, y = torch.zeros(2, 5, 3), torch.zeros(2, 5, dtype=torch.long)
    batch = fa.TaskBatch(x, y, x, y)
    assert isinstance(fa.TaskBatch.stack([batch[0], batch[1]]), fa.TaskBatch)
    with raises_misuse("same number of examples"):
        fa.TaskBatch(x, y[:, :4], x, y)
    with raises_misuse("query_x and query_y must hold the same number of examples"):
        fa.Task(x[0], y[0], x[0], y[0, :3])
    with raises_misuse("leading task dimension"):
        fa.TaskBatch(x, y, x[:1], y[:1])
    with raises_misuse("at least one task"):
        fa.TaskBatch.stack([])
    with raises_misuse("same support and query sizes"):
        fa.TaskBatch.stack([batch[0], fa.Task(x[0, :4], y[0, :4], x[0], y[0])])
    tasks = fa.SinusoidTasks(seed=0)
    with raises_misuse("n >= 1"):
        tasks.sample(0)
    with raises_misuse("count >= 1"):
        next(tasks.episodes(0))


def test_a_task_and_a_batch_move_and_compare_as_the_same_kind() -> None:
    batch = fa.FewShotTasks(random_dataset(), ways=3, shots=1, queries=2, seed=0).sample(2)
    task = batch[0]
    moved_task, moved_batch = task.to("cpu"), batch.to(torch.device("cpu"))
    assert type(moved_task) is fa.Task and type(moved_batch) is fa.TaskBatch
    assert torch.equal(moved_task.classes, batch.classes[0]) and torch.equal(moved_batch.query_y, batch.query_y)
    assert fa.Task(task.support_x, task.support_y, task.query_x, task.query_y).to("cpu").classes is None
    assert repr(task).startswith("Task(support_x=") and repr(batch).startswith("TaskBatch(support_x=")
    assert [f.name for f in dataclasses.fields(fa.Task)] == [f.name for f in dataclasses.fields(fa.TaskBatch)] == [
        "support_x", "support_y", "query_x", "query_y", "classes"
    ]


def test_ways_are_the_largest_label_plus_one() -> None:
    assert ways_of(torch.tensor([0, 2, 1, 2])) == 3 and ways_of(torch.tensor([[1], [0]])) == 2
    batch = fa.FewShotTasks(random_dataset(), ways=4, shots=2, queries=1, seed=0).sample(1)
    assert ways_of(batch.support_y) == 4


def test_sinusoid_tasks_follow_the_maml_ranges() -> None:
    batch = fa.SinusoidTasks(shots=10, queries=7, seed=0).sample(200)
    assert batch.support_x.shape == (200, 10, 1) and batch.query_y.shape == (200, 7, 1)
    assert batch.support_x.min() >= -5 and batch.support_x.max() <= 5
    assert batch.support_y.abs().max() <= 5
    # y = A sin(x - phi): recover A and phi from two points of each task and check the ranges
    for task in list(batch)[:20]:
        x, y = task.support_x[:, 0].double(), task.support_y[:, 0].double()
        design = torch.stack([torch.sin(x), -torch.cos(x)], 1)  # A sin(x - phi) = A cos(phi) sin x - A sin(phi) cos x
        coef = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
        amplitude, phase = torch.hypot(*coef).item(), torch.atan2(coef[1], coef[0]).item()
        assert 0.1 - 1e-4 <= amplitude <= 5 + 1e-4 and -1e-4 <= phase <= torch.pi + 1e-4
        expected = amplitude * torch.sin(task.query_x[:, 0].double() - phase)
        torch.testing.assert_close(task.query_y[:, 0].double(), expected, atol=1e-4, rtol=1e-4)


def test_dataset_classes_follow_slicing_concatenation_and_devices() -> None:
    batch = fa.FewShotTasks(random_dataset(), ways=3, shots=1, queries=2, seed=0).sample(4)
    assert batch.classes.shape == (4, 3)
    assert torch.equal(batch[1:3].classes, batch.classes[1:3])
    assert torch.equal(batch[2].classes, batch.classes[2])
    assert torch.equal(fa.TaskBatch.cat([batch[:1], batch[1:]]).classes, batch.classes)
    assert torch.equal(fa.TaskBatch.stack(list(batch)).classes, batch.classes)
    assert torch.equal(batch.to("cpu").classes, batch.classes)
    plain = fa.TaskBatch(batch.support_x, batch.support_y, batch.query_x, batch.query_y)
    assert fa.TaskBatch.cat([plain, batch]).classes is None
    with raises_misuse("leading task dimension"):
        fa.TaskBatch(batch.support_x, batch.support_y, batch.query_x, batch.query_y, batch.classes[:2])


class Pairs(torch.utils.data.Dataset):
    """A plain torch Dataset of ``(x, int)`` pairs that counts its reads; ``targets`` optionally exposes the labels."""

    def __init__(self, xs: torch.Tensor, labels: torch.Tensor, targets: bool = False) -> None:
        self.xs, self.item_labels, self.reads = xs, labels.tolist(), 0
        if targets:
            self.targets = self.item_labels

    def __len__(self) -> int:
        return len(self.item_labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        self.reads += 1
        return self.xs[index], self.item_labels[index]


def _examples(kind: str, n: int) -> torch.Tensor:
    """``n`` distinct examples of a kind: float64 features [n, 16], int64 tokens [n, 12], uint8 images [n, 1, 4, 4]."""
    generator = torch.Generator().manual_seed(1)
    if kind == "features":
        return torch.randn(n, 16, dtype=torch.float64, generator=generator)
    if kind == "tokens":
        return torch.randint(0, 30_000, (n, 12), generator=generator)
    return torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8, generator=generator)


def _shuffled_labels(classes: int, per_class: int) -> torch.Tensor:
    """Labels ``0..classes-1``, ``per_class`` of each, in a fixed random order (so grouping by class matters)."""
    labels = torch.arange(classes).repeat_interleave(per_class)
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(2))]


def _assert_same_batches(a: fa.TaskBatch, b: fa.TaskBatch) -> None:
    for name in ("support_x", "support_y", "query_x", "query_y", "classes"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and torch.equal(x, y), name


@pytest.mark.parametrize(
    "kind, dtype", [("features", torch.float64), ("tokens", torch.int64), ("images", torch.float32)]
)
def test_any_data_gives_the_same_tasks_as_a_class_dataset_or_a_torch_dataset(kind: str, dtype: torch.dtype) -> None:
    examples, labels = _examples(kind, 70), _shuffled_labels(classes=7, per_class=10)
    dataset = fa.datasets.ClassDataset(examples, labels, [f"c{i}" for i in range(7)])
    over_tensor = fa.FewShotTasks(dataset, ways=4, shots=2, queries=3, seed=9)
    over_dataset = fa.FewShotTasks(Pairs(examples, labels), ways=4, shots=2, queries=3, seed=9)
    batch = over_tensor.sample(5)
    assert batch.support_x.shape == (5, 8, *examples.shape[1:]) and batch.query_x.shape == (5, 12, *examples.shape[1:])
    assert batch.support_x.dtype == batch.query_x.dtype == dtype
    assert batch.support_y.tolist() == [[0, 0, 1, 1, 2, 2, 3, 3]] * 5
    assert batch.query_y.tolist() == [[c for c in range(4) for _ in range(3)]] * 5
    assert batch.classes.shape == (5, 4) and all(len(set(c)) == 4 for c in batch.classes.tolist())
    inputs = dataset.gather(torch.arange(len(dataset)))  # every example as tasks hold it, grouped by class
    for task in batch:  # every example of a task belongs to the dataset class its label stands for
        xs, ys = torch.cat([task.support_x, task.query_x]), torch.cat([task.support_y, task.query_y])
        for x, y in zip(xs, ys, strict=True):
            row = next(i for i in range(len(inputs)) if torch.equal(inputs[i], x))
            assert int(dataset.labels[row]) == int(task.classes[y])
    _assert_same_batches(batch, over_dataset.sample(5))
    for a, b in zip(over_tensor.episodes(6, batch_size=4), over_dataset.episodes(6, batch_size=4), strict=True):
        _assert_same_batches(a, b)


def test_a_lazy_dataset_is_read_only_for_the_tasks_drawn() -> None:
    examples, labels = _examples("tokens", 400), _shuffled_labels(classes=40, per_class=10)
    source = Pairs(examples, labels, targets=True)
    tasks = fa.FewShotTasks(source, ways=5, shots=1, queries=2, seed=0)
    assert source.reads == 0
    batch = tasks.sample(2)
    assert 0 < source.reads <= 2 * 5 * (1 + 2)
    reads = source.reads
    next(tasks.episodes(1))
    assert source.reads - reads <= 5 * (1 + 2)
    assert batch.support_x.dtype == torch.int64 and batch.support_x.shape == (2, 5, 12)


def test_torch_dataset_labels_of_any_kind_become_classes() -> None:
    names = ["ant", "bee", "cat", "dog"]
    source = [(torch.full((3,), float(i)), names[i % 4]) for i in range(20)]  # a list of pairs is a map-style dataset
    tasks = fa.FewShotTasks(source, ways=4, shots=2, queries=3, seed=0)
    assert tasks.dataset.class_names == names
    task = tasks.sample(1)[0]
    for x, y in zip(task.support_x, task.support_y, strict=True):
        assert names[int(x[0]) % 4] == names[int(task.classes[y])]


def test_a_torch_dataset_with_too_few_eligible_classes_names_the_problem() -> None:
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 2)
    with pytest.raises(ConfigError, match="3-way tasks .* need 3 classes of at least 4 examples; Pairs has 2 such"):
        fa.FewShotTasks(Pairs(torch.zeros(14, 2), labels), ways=3, shots=2, queries=2)
    features = fa.datasets.ClassDataset(torch.zeros(14, 2), labels, ["a", "b", "c"])
    with pytest.raises(ConfigError, match="4-way tasks .* need 4 classes"):
        fa.FewShotTasks(features, ways=4, shots=1, queries=1)


def test_torch_dataset_items_must_be_pairs_of_one_shape() -> None:
    with pytest.raises(DataError, match=r"item 0 of the dataset is a Tensor, not an \(x, label\) pair"):
        fa.FewShotTasks(torch.zeros(10, 3), ways=2, shots=1, queries=1)
    xs = [torch.zeros(3)] * 9 + [torch.zeros(5)]
    tasks = fa.FewShotTasks([(x, i % 2) for i, x in enumerate(xs)], ways=2, shots=4, queries=1)
    with pytest.raises(DataError, match=r"item 9 of dataset 'list' is float32 \[5\] but item \d is float32 \[3\]") as e:
        tasks.sample(1)
    assert "\n" not in str(e.value)


class LinearTasks(fa.TaskDistribution):
    """A new regression family: ``y = w x + b`` with ``w, b ~ N(0, 1)`` drawn per task, ``x ~ U[-5, 5]``."""

    def __init__(self, shots: int = 5, queries: int = 5, seed: int = 0) -> None:
        self.shots, self.queries, self.seed = shots, queries, seed
        self.generator = torch.Generator().manual_seed(seed)

    def _draw(self, n: int, generator: torch.Generator) -> fa.TaskBatch:
        w, b = torch.randn(2, n, 1, 1, generator=generator)
        x = torch.rand(n, self.shots + self.queries, 1, generator=generator) * 10 - 5
        y = w * x + b
        return fa.TaskBatch(x[:, : self.shots], y[:, : self.shots], x[:, self.shots :], y[:, self.shots :])


def test_a_user_defined_task_family_samples_and_replays_its_episodes() -> None:
    tasks = LinearTasks(shots=4, queries=6, seed=3)
    batch = tasks.sample(8)
    assert batch.support_x.shape == (8, 4, 1) and batch.query_y.shape == (8, 6, 1)
    for task in batch:  # each task is one line: two support points give w and b, which fit every query point
        (x0, x1), (y0, y1) = task.support_x[:2, 0], task.support_y[:2, 0]
        w = (y1 - y0) / (x1 - x0)
        torch.testing.assert_close(task.query_y[:, 0], w * (task.query_x[:, 0] - x0) + y0, atol=1e-4, rtol=1e-4)
    first = list(tasks.episodes(5, batch_size=2))
    tasks.sample(3)
    again = list(LinearTasks(shots=4, queries=6, seed=3).episodes(5, batch_size=5))
    assert torch.equal(torch.cat([b.query_y for b in first]), again[0].query_y)
    other = next(LinearTasks(shots=4, queries=6, seed=4).episodes(5, batch_size=5))
    assert not torch.equal(again[0].query_y, other.query_y)
    state = tasks.state_dict()
    expected = tasks.sample(2).support_x
    tasks.load_state_dict(state)
    assert torch.equal(tasks.sample(2).support_x, expected)


def _unrotated(x: torch.Tensor, inputs: torch.Tensor) -> tuple[int, int]:
    """The row of ``inputs`` that ``x`` is a rotation of, and by how many quarter turns (noise images: unique)."""
    for turns in range(4):
        match = (inputs == torch.rot90(x, -turns, dims=(-2, -1))).flatten(1).all(dim=1).nonzero()
        if len(match):
            return int(match[0]), turns
    raise AssertionError("an example that is no rotation of any dataset example")


def _turns_per_class(task: fa.Task, inputs: torch.Tensor) -> tuple[list[int], list[list[int]]]:
    """The rows of a task's examples (support, then query) and, per task label, the turns of its examples."""
    xs, ys = torch.cat([task.support_x, task.query_x]), torch.cat([task.support_y, task.query_y])
    found = [_unrotated(x, inputs) for x in xs]
    turns: list[list[int]] = [[] for _ in range(int(ys.max()) + 1)]
    for (_, turn), label in zip(found, ys.tolist(), strict=True):
        turns[label].append(turn)
    return [row for row, _ in found], turns


def test_class_rotations_turn_a_class_support_and_query_alike_and_otherwise_draw_the_same_tasks() -> None:
    dataset = random_dataset(classes=10, per_class=8, size=12)
    inputs = dataset.gather(torch.arange(len(dataset)))
    rotated = fa.FewShotTasks(dataset, ways=5, shots=2, queries=3, seed=4, class_rotations=True).sample(12)
    plain = fa.FewShotTasks(dataset, ways=5, shots=2, queries=3, seed=4).sample(12)
    per_task = []
    for task, unturned in zip(rotated, plain, strict=True):
        rows, turns = _turns_per_class(task, inputs)
        assert all(len(set(t)) == 1 for t in turns)  # one rotation per class, its support and query alike
        assert rows == _turns_per_class(unturned, inputs)[0]  # the classes and examples drawn without the option
        per_task.append(tuple(t[0] for t in turns))
    assert {turn for turns in per_task for turn in turns} == {0, 1, 2, 3}
    assert len(set(per_task)) > 1  # tasks draw their own rotations
    assert torch.equal(rotated.support_y, plain.support_y) and torch.equal(rotated.classes, plain.classes)


def test_class_rotations_replay_their_episodes_and_resume_exactly() -> None:
    tasks = fa.FewShotTasks(random_dataset(), 4, 1, 2, seed=3, class_rotations=True)
    first = torch.cat([b.query_x for b in tasks.episodes(6, batch_size=4)])
    state = tasks.state_dict()
    expected = tasks.sample(3)
    again = torch.cat([b.query_x for b in tasks.episodes(6, batch_size=5)])
    assert torch.equal(first, again)
    tasks.load_state_dict(state)
    resumed = tasks.sample(3)
    assert torch.equal(resumed.support_x, expected.support_x) and torch.equal(resumed.query_x, expected.query_x)
    plain = torch.cat([b.query_x for b in fa.FewShotTasks(random_dataset(), 4, 1, 2, seed=3).episodes(6)])
    assert not torch.equal(first, plain)


def test_class_rotations_off_leave_the_stream_as_it_was() -> None:
    dataset = random_dataset()
    off = fa.FewShotTasks(dataset, 4, 1, 2, seed=8, class_rotations=False)
    default = fa.FewShotTasks(dataset, 4, 1, 2, seed=8)
    _assert_same_batches(off.sample(5), default.sample(5))
    assert torch.equal(off.state_dict()["generator"], default.state_dict()["generator"])


def test_class_rotations_of_a_torch_dataset_are_those_of_a_class_dataset() -> None:
    examples, labels = _examples("images", 70), _shuffled_labels(classes=7, per_class=10)
    dataset = fa.datasets.ClassDataset(examples, labels, [f"c{i}" for i in range(7)])
    over_tensor = fa.FewShotTasks(dataset, ways=4, shots=2, queries=3, seed=9, class_rotations=True)
    over_dataset = fa.FewShotTasks(Pairs(examples, labels), ways=4, shots=2, queries=3, seed=9, class_rotations=True)
    _assert_same_batches(over_tensor.sample(5), over_dataset.sample(5))


@pytest.mark.parametrize("shape", [(16,), (1, 8, 12)])
def test_class_rotations_need_square_examples(shape: tuple[int, ...]) -> None:
    dataset = fa.datasets.ClassDataset(torch.zeros(40, *shape), torch.arange(4).repeat_interleave(10), list("abcd"))
    with pytest.raises(ConfigError, match=r"class_rotations needs square examples \[\.\.\., H, W\], got examples of"):
        fa.FewShotTasks(dataset, 2, 1, 1, class_rotations=True)
