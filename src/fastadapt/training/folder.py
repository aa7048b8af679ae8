"""The run folder: ``config.yaml``, the metrics log (``metrics.jsonl``, ``metrics.csv``, TensorBoard) and the
place of the checkpoints."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import yaml

from fastadapt.errors import CheckpointError
from fastadapt.logs import TensorBoard, read_records, write_csv
from fastadapt.storage import atomic_write_text, exclusive, holds_files

RUN_MARKERS = ("last.pt", "metrics.jsonl")  # files that say a folder already holds a run


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Write ``config`` as the run folder's ``config.yaml`` (atomically, keys in their order)."""
    atomic_write_text(yaml.safe_dump(config, sort_keys=False), run_dir / "config.yaml")


class RunFolder:
    """The files of a run (none when training in memory, ``run_dir=None``).

    Only the ``writer`` (rank 0 of a distributed run) writes; the other processes read.
    """

    def __init__(self, run_dir: str | Path | None, writer: bool = True, tensorboard: bool = False) -> None:
        self.path = Path(run_dir) if run_dir is not None else None
        self.writer = writer
        if self.path is not None and writer:
            self.path.mkdir(parents=True, exist_ok=True)
        self.tensorboard = (
            TensorBoard(self.path / "tensorboard") if tensorboard and self.path is not None and writer else None
        )

    def held(self) -> contextlib.AbstractContextManager[None]:
        """This process's hold on the folder while a block writes it (``storage.exclusive``); nothing to hold
        without a folder or for a process that does not write."""
        return exclusive(self.path) if self.path is not None and self.writer else contextlib.nullcontext()

    def file(self, name: str) -> Path | None:
        """The path of file ``name`` of the run, or ``None`` without a run folder."""
        return self.path / name if self.path is not None else None

    def create(self, config: dict[str, Any] | None) -> None:
        """Start a new run here, with ``config`` as its ``config.yaml``; a folder that holds a run is refused."""
        if self.path is None:
            return
        if any((self.path / name).exists() for name in RUN_MARKERS):
            raise CheckpointError(
                f"{self.path} already holds a run: continue it with resume (--resume) or choose another run folder"
            )
        if config is not None and self.writer:
            write_config(self.path, config)

    def reopen(self) -> None:
        """Continue the run here: it must exist; the temporary files of writes that a kill tore are removed."""
        if self.path is None or not holds_files(self.path):
            raise CheckpointError(f"cannot resume: there is no run in {self.path}")
        self.remove_torn_writes()

    def log(self, record: dict[str, Any]) -> None:
        """Append ``record`` to ``metrics.jsonl`` (and to the TensorBoard events)."""
        if self.path is not None and self.writer:
            with open(self.path / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            if self.tensorboard is not None:
                self.tensorboard.log(record)

    def write_csv(self) -> None:
        """``metrics.csv`` from the log so far (at each checkpoint, so it is never far behind)."""
        if self.path is not None and self.writer:
            write_csv(self.path / "metrics.jsonl", self.path / "metrics.csv")

    def close(self) -> None:
        self.write_csv()
        if self.tensorboard is not None:
            self.tensorboard.close()

    def remove_torn_writes(self) -> None:
        """Delete the temporary files of atomic writes that a kill interrupted (``.NAME.*.tmp``; never a
        finished file)."""
        if self.path is not None and self.writer:
            for stale in self.path.glob(".*.tmp"):
                stale.unlink(missing_ok=True)

    def truncate_log(self, step: int) -> None:
        """Drop log records after ``step`` (a resumed run writes them again) and any line torn by a kill."""
        log = self.file("metrics.jsonl")
        if log is not None and log.is_file() and self.writer:
            kept = [record for record in read_records(log) if record.get("step", step + 1) <= step]
            atomic_write_text("".join(json.dumps(record) + "\n" for record in kept), log)
