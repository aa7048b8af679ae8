"""How a FineTune run's test accuracy depends on how the new head is fitted: the same pre-trained encoder
tested on the same episodes under several fittings (Chen et al.'s and fastadapt's earlier default), each with
its 95% CI, its fitting time per task and its paired lead over the first.

    python benchmarks/finetune_fitting.py runs/cmp-finetune-omniglot-5w1s --data-dir ../shared/data --threads 1 \
        --json > docs/results/finetune_fitting.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from common import machine, parser

from fastadapt.evaluate import mean_ci95
from fastadapt.experiment import learner_with, load_learner, test_learner

FITTINGS: dict[str, dict[str, Any]] = {
    "chen": {"algorithm.finetune_lr": 0.01, "algorithm.finetune_momentum": 0.9, "algorithm.finetune_dampening": 0.9,
             "algorithm.finetune_weight_decay": 0.001, "algorithm.finetune_batch": 4, "algorithm.finetune_epochs": 100},
    "full_batch_sgd_0.1_x100": {"algorithm.finetune_steps": 100, "algorithm.finetune_lr": 0.1,
                                "algorithm.finetune_momentum": 0.0, "algorithm.finetune_dampening": 0.0,
                                "algorithm.finetune_weight_decay": 0.0, "algorithm.finetune_batch": None,
                                "algorithm.finetune_epochs": None},
}


def measure(run: Path, data_dir: str | None, episodes: int | None) -> list[dict[str, Any]]:
    """Each fitting's accuracy and time per task, and its per-episode lead over the first fitting (paired: the
    same episodes), with 95% CIs."""
    learner, config = load_learner(run, data_dir)
    rows, first = [], None
    for name, changes in FITTINGS.items():
        fitted, changed = learner_with(learner, config, changes)
        start = time.perf_counter()
        result = test_learner(fitted, changed, episodes)
        seconds = time.perf_counter() - start
        first = result.values if first is None else first
        lead, lead_ci, _ = mean_ci95([a - b for a, b in zip(result.values, first, strict=True)])
        rows.append({"fitting": name, "changes": changes, "accuracy": result.mean, "ci95": result.ci95,
                     "episodes": result.episodes, "seconds_per_task": seconds / result.episodes,
                     "above_first": lead, "above_first_ci95": lead_ci})
    return rows


def main() -> None:
    p = parser(__doc__ or "", data=False)
    p.add_argument("run", type=Path, help="a FineTune run folder")
    p.add_argument("--data-dir", default=None, help="where the run's dataset is on this machine")
    p.add_argument("--episodes", type=int, default=None, help="test episodes (default: the run's test.episodes)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = measure(args.run, args.data_dir, args.episodes)
    if args.json:
        print(json.dumps({"machine": machine(), "run": str(args.run), "rows": rows}, indent=2))
        return
    for row in rows:
        print(f"{row['fitting']}: {100 * row['accuracy']:.2f}% ± {100 * row['ci95']:.2f}% "
              f"({row['episodes']} episodes, {1000 * row['seconds_per_task']:.0f} ms per task)")


if __name__ == "__main__":
    main()
