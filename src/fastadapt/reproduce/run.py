"""``fastadapt reproduce``: train every row of a paper's experiment per seed, test it as the paper
did, and record the comparison (``reproduce.json``) and its figures beside the runs.

Runs live in ``OUT/NAME-BUDGET/<row>-seed<k>``; running the same command again reuses the finished
runs and resumes an interrupted one, so a long reproduction survives being stopped.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from fastadapt.config import RunConfig, build_config
from fastadapt.errors import CheckpointError, ConfigError
from fastadapt.evaluate import higher_is_better
from fastadapt.experiment import (
    carried,
    learner_with,
    load_learner,
    machine,
    read_config,
    retest_run,
    run_experiment,
    with_data_dir,
    with_dataset_field,
)
from fastadapt.reproduce.compare import against, over_seeds
from fastadapt.reproduce.kept import run_settings
from fastadapt.reproduce.measures import measure
from fastadapt.reproduce.registry import BUDGETS, Reproduction, Row, get
from fastadapt.storage import atomic_write_text, holds_files
from fastadapt.training.folder import write_config

TIME_KEYS = ("train.max_minutes",)  # how long an unfinished run may still train, not what each step computes
TEST = "test."  # the prefix of the keys of how a trained model is tested, which change no saved training state


def slug(label: str) -> str:
    """A row label as a folder name."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def row_config(
    reproduction: Reproduction, row_index: int, budget: str, seed: int, data_dir: str | None, download: bool
) -> RunConfig:
    """The resolved config of one row's run for one seed under a budget. ``data_dir`` and ``download`` apply to the
    rows whose dataset reads files (a reproduction may mix them with generated tasks, as sinusoid or RL rows)."""
    row = reproduction.rows[row_index]
    config = build_config(row.preset, [*row.overrides, *reproduction.budgets[budget].overrides, f"seed={seed}"])
    config = with_data_dir(config, data_dir)
    return with_dataset_field(config, "download", True) if download else config


def _differences(stored: RunConfig, wanted: RunConfig) -> set[str]:
    """The keys whose values differ between two configs, but for where the data is and how the preset words itself."""
    a, b = run_settings(stored), run_settings(wanted)
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def train_or_reuse(config: RunConfig, run_dir: Path, progress: bool, data_dir: str | None = None) -> dict[str, Any]:
    """The run's ``result.json``: read if the run finished, else resumed or started. A finished run whose test
    settings (``test.*``) changed since is tested again under them (``retest_run``), not trained; an unfinished
    one continues under the reproduction's new test settings and time budget (``train.max_minutes``), reading its
    data from ``data_dir`` where given (a folder carried from another machine). Either way its ``config.yaml``
    says so."""
    if (run_dir / "config.yaml").is_file():
        stored = read_config(run_dir)
        differ = _differences(stored, config)
        finished = (run_dir / "result.json").is_file()
        training = {key for key in differ if not key.startswith(TEST)}  # what changes the training
        if training and (finished or not training <= set(TIME_KEYS)):
            raise ConfigError(
                f"{run_dir} holds a run with another config (the reproduction's settings changed since: "
                f"{', '.join(sorted(training))}): remove that folder or give another --out"
            )
        if finished:
            if differ:
                return retest_run(run_dir, config.test, data_dir, progress)
            return json.loads((run_dir / "result.json").read_text())
        if any(run_dir.glob("*.pt")) or (run_dir / "metrics.jsonl").is_file():
            if differ:
                stored = stored.replace(train=config.train, test=config.test)
                write_config(run_dir, stored.to_dict())
            return run_experiment(carried(run_dir, stored, data_dir), run_dir, resume=True, progress=progress)
    elif holds_files(run_dir):
        raise CheckpointError(f"{run_dir} exists and is not a run folder: remove it or give another --out")
    return run_experiment(config, run_dir, progress=progress)


def tune(
    learner: Any, config: RunConfig, row: Row, metric: str, run_dir: Path | None = None
) -> tuple[Any, RunConfig, dict[str, Any] | None]:
    """The learner with the row's tuned setting: each value tested on validation tasks under the settings of the
    measure ``tune.measure`` names, the best kept (the first of equals; a diverged value is the worst). Returns
    the learner, its config and what was tried (None for a diverged value's score); the learner unchanged where
    the row tunes nothing."""
    if row.tune is None:
        return learner, config, None
    on = next(m for m in row.measures if m.label == row.tune.measure)
    scores = []
    for value in row.tune.values:
        candidate, changed = learner_with(learner, config, dict.fromkeys(row.tune.keys, value))
        scores.append(measure(candidate, changed, on, split="val", run_dir=run_dir)["value"])
    sign = 1.0 if higher_is_better(metric) else -1.0
    best = max(range(len(scores)), key=lambda i: sign * scores[i] if math.isfinite(scores[i]) else -math.inf)
    chosen = row.tune.values[best]
    tuned, changed = learner_with(learner, config, dict.fromkeys(row.tune.keys, chosen))
    tried = [score if math.isfinite(score) else None for score in scores]  # None: diverged (JSON has no NaN)
    return tuned, changed, {**row.tune.listing(), "validation": tried, "chosen": chosen}


def reproduce(
    name: str | Reproduction,
    budget: str = "quick",
    out: str | Path = "runs/reproduce",
    seeds: int | None = None,
    data_dir: str | None = None,
    download: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run reproduction ``name`` (or a ``Reproduction`` of your own) under ``budget`` (``quick`` or
    ``full``); return and store the report.

    The report (``OUT/NAME-BUDGET/reproduce.json``) holds, per row and measure, ours (mean and 95%
    CI; over test episodes with one seed, a t interval over seeds with several), the paper's number,
    the gap and whether the intervals overlap, with every run's folder, steps and training time.
    """
    from fastadapt.reproduce.figures import draw_figures

    reproduction = get(name) if isinstance(name, str) else name
    name = reproduction.name
    if budget not in BUDGETS:
        raise ConfigError(f"--budget must be one of {BUDGETS}, got {budget!r}")
    if budget not in reproduction.budgets:
        raise ConfigError(f"{name} has no {budget} budget; it has {', '.join(reproduction.budgets)}")
    seeds = seeds if seeds is not None else reproduction.budgets[budget].seeds
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    folder = Path(out) / f"{name}-{budget}"
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows, trained = [], []
    for index, row in enumerate(reproduction.rows):
        runs: list[dict[str, Any]] = []
        per_measure: list[list[dict[str, Any]]] = [[] for _ in row.measures]
        for seed in range(seeds):
            run_dir = folder / f"{slug(row.label)}-seed{seed}"
            echo(f"[{index + 1}/{len(reproduction.rows)}] {row.label}, seed {seed}: {row.preset} in {run_dir}")
            wanted = row_config(reproduction, index, budget, seed, data_dir, download)
            result = train_or_reuse(wanted, run_dir, progress, data_dir)
            learner, config = load_learner(run_dir, data_dir)
            learner, config, tuned = tune(learner, config, row, reproduction.metric, run_dir)
            for k, item in enumerate(row.measures):
                own = result if tuned is None else None
                per_measure[k].append(measure(learner, config, item, own, run_dir=run_dir))
            runs.append({"seed": seed, "run": str(run_dir), "train_steps": result["train_steps"],
                         "best_step": result["best_step"], "tested_step": result.get("tested_step"),
                         "train_time_s": result["train_time_s"], "tuned": tuned})
            if seed == 0:  # the figures show the first seed of each row
                trained.append((row, seed, run_dir, learner, config))
        measures = []
        for item, per_seed in zip(row.measures, per_measure, strict=True):
            ours = {**over_seeds(per_seed), "per_seed": per_seed}
            paper = None if item.paper is None else {"value": item.paper.value, "ci95": item.paper.ci95}
            measures.append(
                {"label": item.label, "set": item.set, "ours": ours, "paper": paper, **against(ours, item.paper)}
            )
        rows.append({
            "label": row.label, "preset": row.preset, "overrides": list(row.overrides), "runs": runs,
            "measures": measures, "protocol": None if row.protocol is None else row.protocol.listing(),
        })
    report = {
        "name": name,
        "title": reproduction.title,
        "source": reproduction.source,
        "metric": reproduction.metric,
        "budget": budget,
        "budget_overrides": list(reproduction.budgets[budget].overrides),
        "seeds": seeds,
        "command": (
            f"fastadapt reproduce {name} --budget {budget}"
            + (f" --seeds {seeds}" if seeds != reproduction.budgets[budget].seeds else "")
        ),
        "rows": rows,
        "date": date.today().isoformat(),
        "machine": machine(),
    }
    report["figures"] = draw_figures(reproduction.figures, reproduction.metric, trained, folder, keep=True)
    report["wall_time_s"] = time.perf_counter() - start
    atomic_write_text(json.dumps(report, indent=2) + "\n", folder / "reproduce.json")
    return report
