"""Pictures of runs, as researchers read them: learning curves of one or several runs overlaid
(meta-training loss, and the validation metric with its 95% CI band), and for RL runs the return
against the number of adaptation steps. PNG files drawn with matplotlib's object API (``Figure``), never
through ``pyplot``: a library that imports pyplot or picks a backend changes the user's own figures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from fastadapt.errors import CheckpointError
from fastadapt.logs import read_records

SMOOTHING = 0.9  # exponential moving average of the noisy per-step training loss


def _smooth(values: list[float]) -> list[float]:
    out, running = [], None
    for v in values:
        running = v if running is None else SMOOTHING * running + (1 - SMOOTHING) * v
        out.append(running)
    return out


def _records(run: Path) -> list[dict[str, Any]]:
    log = Path(run) / "metrics.jsonl"
    if not log.is_file():
        raise CheckpointError(f"{run} has no metrics.jsonl: give run folders written by `fastadapt train`")
    return read_records(log)


def _val_metric(records: list[dict[str, Any]]) -> str | None:
    for record in records:
        if record.get("kind") == "val":
            return next((k for k in record if k.startswith("val_") and k not in ("val_ci95", "val_loss")), None)
    return None


def learning_curves(runs: Sequence[str | Path], path: str | Path, labels: Sequence[str] | None = None) -> Path:
    """Meta-training loss (smoothed) and validation metric ± 95% CI against meta-updates, one line per run."""
    folders = [Path(r) for r in runs]
    labels = list(labels) if labels else [r.name for r in folders]
    figure = Figure(figsize=(10, 3.8), dpi=100)
    left, right = figure.subplots(1, 2)
    metric_names, left_label = set(), "meta-training loss (smoothed)"
    for run, label in zip(folders, labels, strict=True):
        records = _records(run)
        train = [r for r in records if r.get("kind") == "train" and "loss" in r]
        if train and "return_after" in train[0]:  # RL: the training batches' returns say more than the surrogate
            left_label = "training return (dashed: before adaptation)"
            updates = [r["step"] for r in train]
            line = left.plot(updates, _smooth([r["return_after"] for r in train]), label=label)[0]
            left.plot(updates, _smooth([r["return_before"] for r in train]), linestyle="--", color=line.get_color())
        elif train:
            left.plot([r["step"] for r in train], _smooth([r["loss"] for r in train]), label=label)
        metric = _val_metric(records)
        if metric is None:
            continue
        metric_names.add(metric)
        val = [r for r in records if r.get("kind") == "val" and metric in r]
        steps = [r["step"] for r in val]
        means = [r[metric] for r in val]
        cis = [r.get("val_ci95", 0.0) for r in val]
        line = right.plot(steps, means, marker="o", markersize=3, label=label)[0]
        lower = [m - c for m, c in zip(means, cis, strict=True)]
        upper = [m + c for m, c in zip(means, cis, strict=True)]
        right.fill_between(steps, lower, upper, color=line.get_color(), alpha=0.2)
    left.set(xlabel="meta-update", ylabel=left_label, title="meta-training")
    metrics = " / ".join(sorted(m.removeprefix("val_") for m in metric_names))
    right.set(xlabel="meta-update", ylabel=metrics or "validation", title="validation (95% CI band)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    return save_figure(figure, path)


def adaptation_plot(results: Sequence[dict[str, Any]], labels: Sequence[str], path: str | Path) -> Path:
    """Return (± 95% CI) against the number of adaptation steps, from RL runs' ``result.json``."""
    figure = Figure(figsize=(5, 3.8), dpi=100)
    axis = figure.subplots()
    for result, label in zip(results, labels, strict=True):
        rows = result.get("adaptation")
        if not rows:
            raise CheckpointError(f"{label} has no adaptation curve in its result.json (RL runs have one)")
        steps = [r["steps"] for r in rows]
        means, cis = [r["return"] for r in rows], [r["ci95"] for r in rows]
        axis.errorbar(steps, means, yerr=cis, marker="o", capsize=3, label=label)
    axis.set(xlabel="adaptation steps", ylabel="average return", title="return after adaptation (95% CI)", xticks=steps)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def plot_runs(runs: Sequence[str | Path], out: str | Path | None = None) -> list[Path]:
    """The pictures of one or several runs: ``curves.png``, and ``adaptation.png`` for RL runs;
    written to ``out`` (a folder), else to the first run's folder."""
    folders = [Path(r) for r in runs]
    folder = Path(out) if out is not None else folders[0]
    folder.mkdir(parents=True, exist_ok=True)
    written = [learning_curves(folders, folder / "curves.png")]
    results = {r: json.loads((r / "result.json").read_text()) for r in folders if (r / "result.json").is_file()}
    rl = {r: v for r, v in results.items() if v.get("adaptation")}
    if rl:
        written.append(adaptation_plot(list(rl.values()), [r.name for r in rl], folder / "adaptation.png"))
    return written


def save_figure(figure: Figure, path: str | Path, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> Path:
    """Write ``figure`` as a PNG (its folder created; its axes laid out inside ``rect``); no pyplot registry holds it,
    so it is freed with its last reference."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout(rect=rect)
    figure.savefig(path)
    return path
