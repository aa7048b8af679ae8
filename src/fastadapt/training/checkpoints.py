"""A run's checkpoints: ``last.pt`` to continue exactly as if never stopped, ``best.pt`` at the best validation,
and with ``keep_best`` above one ``top/step-N.pt`` at each of the best few validations.

All hold the same keys (besides those ``fastadapt.checkpoint.save_checkpoint`` adds): ``algorithm``,
``config``, ``metadata``, ``model``, ``optimizer``, ``scheduler``, ``sampler``, ``rng``, ``step``,
``elapsed_s``, ``best`` and ``top`` (the best few validations' steps and scores, best first; absent in
checkpoints of earlier versions). Learners that make their own outer update (meta-RL) have no optimizer or
schedule: their checkpoints hold ``None`` there, and the SGD state that earlier versions wrote for them is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from fastadapt.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from fastadapt.errors import CheckpointError
from fastadapt.training.folder import RunFolder

TOP = "top"  # the sub-folder of the checkpoints of the best few validations


def top_name(step: int) -> str:
    """The checkpoint of the validation at ``step`` among the best few, relative to the run folder."""
    return f"{TOP}/step-{step}.pt"


class Sampler(Protocol):
    """A task source whose position in its stream a checkpoint keeps (a ``TaskDistribution``, ``RLTasks``)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainingState:
    """The objects a checkpoint saves and restores (with the global random states): the model of
    ``algorithm`` (any module: a ``MetaLearner`` or an ``RLMetaLearner``), its optimizer and learning-rate schedule
    (``None`` for learners that apply their own outer update), and the task sampler."""

    algorithm: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer | None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    sampler: Sampler


@dataclass(frozen=True)
class Standing:
    """Where a run stands: meta-updates done, training time, the best validation so far (``None`` before) and the
    best few (``keep_best``; their steps and scores, best first)."""

    step: int = 0
    elapsed_s: float = 0.0
    best: dict[str, Any] | None = None
    top: tuple[dict[str, Any], ...] = ()


class Checkpoints:
    """Writes and reads the checkpoints of ``state`` in a run folder; ``config`` and ``metadata`` (such as the
    preprocessing of the images) are stored in each."""

    def __init__(
        self, folder: RunFolder, state: TrainingState, config: dict[str, Any] | None, metadata: dict[str, Any]
    ) -> None:
        self.folder, self.state, self.config, self.metadata = folder, state, config, metadata

    def save(self, name: str, standing: Standing) -> None:
        """Write checkpoint ``name`` (``last.pt`` or ``best.pt``) atomically; only the folder's writer writes."""
        path = self.folder.file(name)
        if path is None or not self.folder.writer:
            return
        state = self.state
        save_checkpoint(
            path,
            algorithm=state.algorithm,
            config=self.config,
            metadata=self.metadata,
            model=state.model.state_dict(),
            optimizer=state.optimizer.state_dict() if state.optimizer is not None else None,
            scheduler=state.scheduler.state_dict() if state.scheduler is not None else None,
            sampler=state.sampler.state_dict(),
            rng=rng_state(),
            step=standing.step,
            elapsed_s=standing.elapsed_s,
            best=standing.best,
            top=list(standing.top),
        )

    def save_top(self, step: int, standing: Standing) -> None:
        """Write the checkpoint of the validation at ``step``, which ranks among the best few."""
        folder = self.folder.file(TOP)
        if folder is not None and self.folder.writer:
            folder.mkdir(exist_ok=True)
            self.save(top_name(step), standing)

    def prune_top(self, steps: list[int]) -> None:
        """Delete the checkpoints of validations no longer among the best few (``steps``), and the temporary files
        of writes a kill tore."""
        folder = self.folder.file(TOP)
        if folder is None or not self.folder.writer or not folder.is_dir():
            return
        kept = {Path(top_name(step)).name for step in steps}
        for path in folder.iterdir():
            if path.name not in kept:
                path.unlink(missing_ok=True)

    def restore(self) -> Standing:
        """Load ``last.pt`` into the state and say where the run stood; without one, the run starts over. A state
        without an optimizer (and schedule) ignores those the checkpoint holds."""
        path = self.folder.file("last.pt")
        if path is None or not path.is_file():
            return Standing()
        saved = load_checkpoint(path, expect=self.state.algorithm)
        state = self.state
        state.model.load_state_dict(saved["model"])
        if state.optimizer is not None:
            state.optimizer.load_state_dict(saved["optimizer"])
        if state.scheduler is not None:
            state.scheduler.load_state_dict(saved["scheduler"])
        state.sampler.load_state_dict(saved["sampler"])
        set_rng_state(saved["rng"])
        return Standing(saved["step"], saved["elapsed_s"], saved["best"], tuple(saved.get("top") or ()))

    def best_model(self) -> dict[str, torch.Tensor] | None:
        """The model's state in ``best.pt``, if the run has one."""
        path = self.folder.file("best.pt")
        return load_checkpoint(path)["model"] if path is not None and path.is_file() else None


def open_run(folder: RunFolder, checkpoints: Checkpoints, resume: bool, config: dict[str, Any] | None) -> Standing:
    """Start a new run in ``folder`` (writing ``config`` as its ``config.yaml``), or with ``resume`` continue the
    one there from ``last.pt``; say where the run stands."""
    if not resume:
        folder.create(config)
        return Standing()
    folder.reopen()
    standing = checkpoints.restore()
    folder.truncate_log(standing.step)  # no last.pt: the run was stopped before its first checkpoint, start over
    checkpoints.prune_top([entry["step"] for entry in standing.top])  # those written after last.pt come again
    return standing


def top_models(run_dir: str | Path, count: int) -> list[dict[str, torch.Tensor]]:
    """The model states of a run's best validations, best first: ``count`` of them, or as many as it validated."""
    run_dir = Path(run_dir)
    ranked = [entry["step"] for entry in load_checkpoint(run_dir / "last.pt").get("top") or ()][:count]
    if not ranked:
        raise CheckpointError(f"{run_dir} kept no checkpoints of its best validations: an ensemble needs a run "
                              "trained with train.keep_best > 1")
    return [load_checkpoint(run_dir / top_name(step))["model"] for step in ranked]
