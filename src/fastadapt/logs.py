"""A run's metrics in the formats the ecosystem reads: ``metrics.jsonl`` (always, appended per
record), ``metrics.csv`` (always, rewritten from the JSONL at each checkpoint) and TensorBoard
event files (optional, ``train.tensorboard=true``; needs the ``tensorboard`` package)."""

from __future__ import annotations

import csv
import io
import json
import numbers
from pathlib import Path
from typing import Any

from fastadapt.errors import ConfigError
from fastadapt.storage import atomic_write_text


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``, skipping a line torn by a kill."""
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def write_csv(jsonl: Path, target: Path) -> None:
    """``metrics.csv``: one row per record, the columns every key in order of first appearance."""
    records = read_records(jsonl) if jsonl.is_file() else []
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(buffer.getvalue(), target)


class TensorBoard:
    """Every numeric field of every record as a scalar ``<kind>/<field>`` at the record's step."""

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "train.tensorboard=true (--tensorboard) needs the tensorboard package: pip install tensorboard"
            ) from None
        self.writer = SummaryWriter(log_dir=str(folder))

    def log(self, record: dict[str, Any]) -> None:
        kind, step = record.get("kind", "train"), record.get("step", 0)
        for key, value in record.items():
            if key not in ("step", "kind") and isinstance(value, numbers.Real) and not isinstance(value, bool):
                self.writer.add_scalar(f"{kind}/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
