"""A 2D-navigation run's return before and after each adaptation step on one fixed goal, repeated with fresh
rollout noise: the MAML code's test script (cbfinn/maml_rl, maml_examples/test_maml_point.py) evaluates one goal,
``goals[6]`` of ``np.random.seed(1); np.random.uniform(-0.5, 0.5, size=(40, 2))``, which ``--maml-code-goal``
takes; ``--goal x,y`` takes another.

    python benchmarks/nav2d_goal.py runs/reproduce/maml-rl-nav2d-full/maml-rl-seed0 --maml-code-goal --threads 1 --json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import machine, parser

from fastadapt.evaluate import mean_ci95
from fastadapt.experiment import load_learner
from fastadapt.rl.learner import RLMetaLearner


def maml_code_goal() -> tuple[float, float]:
    """The goal the MAML code's point-robot test script evaluates."""
    state = np.random.get_state()
    try:
        np.random.seed(1)
        goals = np.random.uniform(-0.5, 0.5, size=(40, 2))
    finally:
        np.random.set_state(state)  # the global RNG is not this script's to change
    return float(goals[6, 0]), float(goals[6, 1])


def measure(run: Path, goal: tuple[float, float], repeats: int, steps: int | None) -> dict[str, Any]:
    learner, config = load_learner(run)
    if not isinstance(learner, RLMetaLearner):
        raise SystemExit(f"{run} is not a meta-RL run")
    steps = steps if steps is not None else config.test.inner_steps or learner.test_inner_steps
    tasks = torch.tensor([goal], dtype=torch.float64).repeat(repeats, 1)
    returns = learner.adaptation_returns(tasks, steps)
    rows = []
    for k, column in enumerate(returns.T.tolist()):
        mean, ci, _ = mean_ci95(column)
        rows.append({"steps": k, "return": mean, "ci95": ci})
    return {"run": str(run), "goal": list(goal), "repeats": repeats, "curve": rows}


def main() -> None:
    p = parser(__doc__ or "", data=False)
    p.add_argument("runs", type=Path, nargs="+", help="2D-navigation run folders")
    p.add_argument("--goal", default=None, help="x,y (default: --maml-code-goal)")
    p.add_argument("--maml-code-goal", action="store_true", help="the goal of the MAML code's test script")
    p.add_argument("--repeats", type=int, default=40, help="tasks on the goal, each with its own rollout noise")
    p.add_argument("--steps", type=int, default=None, help="adaptation steps (default: the run's test steps)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = (float(v) for v in args.goal.split(",")) if args.goal else maml_code_goal()
    results = [measure(run, (x, y), args.repeats, args.steps) for run in args.runs]
    if args.json:
        print(json.dumps({"machine": machine(), "results": results}, indent=2))
        return
    for result in results:
        curve = ", ".join(f"{r['return']:.2f} ± {r['ci95']:.2f}" for r in result["curve"])
        print(f"{result['run']} on goal ({x:+.3f}, {y:+.3f}): {curve}")


if __name__ == "__main__":
    main()
