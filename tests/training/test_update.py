"""The meta-update strategies of the loop: meta-RL's own outer step (no optimizer), checked and undone when skipped,
and the kinds of tasks each learner trains on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

import fastadapt as fa
from fastadapt.errors import DivergenceError
from fastadapt.nn.params import Params
from fastadapt.rl import Navigation2D, RLMetaLearner, RLTaskBatch, RLTasks
from fastadapt.rl.episodes import Episodes
from fastadapt.rl.learner import Trajectories


class _Shift(RLMetaLearner):
    """A toy meta-RL learner whose outer step adds the tasks' sum to its parameter and reports ``losses`` in turn."""

    name = "shift"
    test_inner_steps = 1

    def __init__(self, losses: list[float]) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        self.losses = iter(losses)

    def collect(self, tasks: Tensor, params: list[Params], generator: torch.Generator | None = None) -> Episodes:
        raise NotImplementedError  # the trainer never rolls out itself

    def adapt(
        self, tasks: Tensor, steps: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[list[Params], Trajectories]:
        raise NotImplementedError

    def outer_step(self, batch: RLTaskBatch) -> tuple[float, dict[str, float]]:
        with torch.no_grad():
            self.weight.add_(batch.tasks.sum(dim=0))
        loss = next(self.losses)
        return loss, {"loss": loss}


def _sums(steps: list[int]) -> Tensor:
    """What the toy's parameter is after the updates ``steps`` (counted from 1) of a 2-task meta-batch stream."""
    tasks = RLTasks(Navigation2D(), seed=0)
    batches = [tasks.sample(2).tasks.sum(dim=0) for _ in range(max(steps))]
    return sum((batches[k - 1] for k in steps), torch.zeros(2, dtype=torch.float64))


def test_a_skipped_rl_update_is_undone_and_counted(tmp_path: Path) -> None:
    learner = _Shift([1.0, float("nan"), 2.0])
    fa.meta_train(learner, RLTasks(Navigation2D(), seed=0), 3, meta_batch=2, run_dir=tmp_path, skip_nonfinite=True,
                  log_every=3, progress=False)
    assert torch.equal(learner.weight.detach(), _sums([1, 3]))
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert record["skipped"] == 1 and record["loss"] == 1.5 and "lr" not in record


def test_a_nonfinite_rl_loss_stops_the_run() -> None:
    learner = _Shift([1.0, float("inf")])
    with pytest.raises(DivergenceError, match="diverged at step 2: the meta-loss is inf"):
        fa.meta_train(learner, RLTasks(Navigation2D(), seed=0), 3, meta_batch=2, progress=False)


def test_each_kind_of_learner_trains_on_its_kind_of_tasks() -> None:
    tasks = fa.SinusoidTasks(seed=0)
    with pytest.raises(TypeError, match=r"shift trains on RLTasks, not on SinusoidTasks \(tasks\)"):
        fa.meta_train(_Shift([]), tasks, 1, progress=False)
    maml = fa.MAML(fa.nn.MLP(1, 1, hidden=(4,)), inner_lr=0.1, loss="mse")
    with pytest.raises(TypeError, match=r"maml trains on TaskDistribution, not on RLTasks \(val_tasks\)"):
        fa.meta_train(maml, tasks, 1, val_tasks=RLTasks(Navigation2D()), progress=False)
    with pytest.raises(TypeError, match="MAML cannot be tested on RLTasks"):
        fa.meta_test(maml, RLTasks(Navigation2D()), episodes=1)


def test_grad_clip_bounds_each_of_the_learners_clip_groups() -> None:
    """Relation Networks clip the encoder and the relation module apart, as Sung et al.'s code: after one update
    each group's gradient norm is the bound, and both together exceed it (one norm over all would hold them to it)."""
    from helpers import random_dataset

    from fastadapt.training.divergence import DivergencePolicy
    from fastadapt.training.update import SupervisedUpdate

    torch.manual_seed(0)
    learner = fa.RelationNet(fa.nn.Conv4(1, None, hidden=4, image_size=28, downsample_blocks=2, feature_maps=True))
    tasks = fa.FewShotTasks(random_dataset(classes=6, per_class=4, size=28), ways=3, shots=1, queries=2)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.0)  # the gradients stay to be read
    constant = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1)
    update = SupervisedUpdate(learner, tasks, None, optimizer, constant, meta_batch=2, grad_clip=1e-4,
                              world=fa.distributed.World())
    update(0, DivergencePolicy(skip=False), None)
    groups = learner.clip_groups()
    assert sum(len(g) for g in groups) == len(list(learner.parameters())) == len({id(p) for g in groups for p in g})
    norms = [torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in g])).item() for g in groups]
    assert norms == pytest.approx([1e-4, 1e-4], rel=1e-3)
    whole = [p for p in learner.parameters() if p.grad is not None]
    assert torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in whole])).item() == pytest.approx(
        1e-4 * 2**0.5, rel=1e-3)
