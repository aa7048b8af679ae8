"""Why some test tasks diverge when a trained regression model adapts: per task, the query MSE before
adaptation, after one step and after ``--steps`` steps, and the largest eigenvalue of the support loss's
Hessian at the trained weights. Gradient descent with step ``a`` is unstable along a direction of
curvature ``lambda`` when ``a * lambda > 2``; the output shows whether the tasks that explode (MSE after
adaptation over 100 times the MSE before, or over 100 where it was below 1) are those, and what the
mean is without them.

    python benchmarks/adaptation_stability.py runs/reproduce/maml-sinusoid-full/maml-meta-trained-with-k-10-seed0 \
        --shots 5 --steps 10 --threads 1 --json > docs/results/sinusoid_stability.json
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import torch
from common import machine, parser
from torch import Tensor
from torch.func import functional_call, hessian

from fastadapt.config import build_tasks, merge, resolve
from fastadapt.experiment import load_learner, test_learner


def top_curvature(model: torch.nn.Module, x: Tensor, y: Tensor) -> float:
    """The largest eigenvalue of the Hessian of the MSE on (x, y) with respect to all of ``model``'s weights, in double
    precision (in single, eigvalsh fails to converge on the near-degenerate Hessians of small initial weights)."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()]).double()
    x, y = x.double(), y.double()

    def loss(vector: Tensor) -> Tensor:
        pieces = torch.split(vector, [math.prod(s) for s in shapes])
        params = {n: piece.view(s) for n, piece, s in zip(names, pieces, shapes, strict=True)}
        return torch.nn.functional.mse_loss(functional_call(model, params, (x,)), y)

    return float(torch.linalg.eigvalsh(hessian(loss)(flat)).max())


def measure(run: Path, shots: int, steps: int, episodes: int | None) -> dict[str, Any]:
    learner, config = load_learner(run)
    config = resolve(merge(config.to_dict(), {"task": {"shots": shots}}))
    step = float(config.algorithm.inner_lr)
    count = episodes or config.test.episodes
    before, one, after = (test_learner(learner, config, count, k).values for k in (0, 1, steps))
    curvature = [
        top_curvature(learner.model, task.support_x, task.support_y)
        for batch in build_tasks(config, "test").episodes(count)
        for task in (batch[i] for i in range(batch.support_x.shape[0]))
    ]
    rose = [i for i in range(count) if not after[i] < before[i]]  # adaptation made it worse (NaN included)
    exploded = [i for i in range(count) if not after[i] < 100 * max(before[i], 1.0)]
    by_loss = sorted(range(count), key=lambda i: before[i])
    return {
        "run": str(run), "shots": shots, "steps": steps, "step_size": step, "tasks": count,
        "mse_before": statistics.fmean(before), "mse_one_step": statistics.fmean(one),
        "mse_after": statistics.fmean(after), "median_after": statistics.median(after),
        "loss_rose": len(rose), "exploded": len(exploded),
        "exploded_before_and_after": [[before[i], after[i]] for i in exploded],
        "exploded_rank_of_loss_before": [by_loss.index(i) + 1 for i in exploded],  # 1 = easiest task
        "mse_after_without_exploded": statistics.fmean(after[i] for i in range(count) if i not in exploded),
        "unstable_at_start": sum(step * c > 2 for c in curvature),
        "step_times_curvature_of_exploded": [step * curvature[i] for i in exploded],
        "median_step_times_curvature": statistics.median(step * c for c in curvature),
        "largest_step_times_curvature": max(step * c for c in curvature),
        "per_task": [{"before": b, "after": a, "step_times_curvature": step * c}
                     for b, a, c in zip(before, after, curvature, strict=True)],
    }


def main() -> None:
    p = parser(__doc__ or "", data=False)
    p.add_argument("run", type=Path, help="a regression run folder (the state its test tests) or one of its "
                   "checkpoint files (e.g. a maml-sinusoid run's best.pt)")
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--episodes", type=int, default=None, help="test tasks (default: the run's test.episodes)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(args.run, args.shots, args.steps, args.episodes)
    if args.json:
        print(json.dumps({"machine": machine(), **result}, indent=2))
        return
    for key, value in result.items():
        if key != "per_task":
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
