"""A meta-RL run's return before and after each adaptation step under test settings of your choice: on its own test
tasks, or on one goal repeated with fresh rollout noise. The MAML code's test script (cbfinn/maml_rl,
maml_examples/test_maml_point.py) evaluates one goal, ``goals[6]`` of ``np.random.seed(1);
np.random.uniform(-0.5, 0.5, size=(40, 2))``, which ``--maml-code-goal`` takes; ``--set`` changes a key of the
run's config for the test (e.g. ``algorithm.test_baseline=previous``); ``--lengths`` adds each step's mean episode
length on the test tasks (the MAML code's test sampler collects 4000 transitions per step, not a number of episodes,
so how long the episodes are says how many it used).

    python benchmarks/rl_test_protocol.py runs/reproduce/maml-rl-nav2d-full/maml-rl-seed0 --maml-code-goal --threads 1
    python benchmarks/rl_test_protocol.py RUN --set algorithm.test_baseline=previous --threads 1 --json
    python benchmarks/rl_test_protocol.py RUN --set algorithm.test_transitions=4000 --lengths --threads 1 --json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from common import machine, parser

from fastadapt.config import RunConfig, build_tasks
from fastadapt.evaluate import EvalResult
from fastadapt.experiment import learner_with, load_learner
from fastadapt.rl.episodes import Episodes
from fastadapt.rl.evaluate import returns_curve
from fastadapt.rl.learner import RLMetaLearner
from fastadapt.rl.tasks import RLTasks


def maml_code_goal() -> tuple[float, float]:
    """The goal the MAML code's point-robot test script evaluates."""
    state = np.random.get_state()
    try:
        np.random.seed(1)
        goals = np.random.uniform(-0.5, 0.5, size=(40, 2))
    finally:
        np.random.set_state(state)  # the global RNG is not this script's to change
    return float(goals[6, 0]), float(goals[6, 1])


def curve_on_goal(learner: RLMetaLearner, goal: tuple[float, float], repeats: int, steps: int) -> list[EvalResult]:
    """The adaptation curve over ``repeats`` copies of one goal, each with its own rollout noise."""
    tasks = torch.tensor([goal], dtype=torch.float64).repeat(repeats, 1)
    return curve_of([learner.adaptation_episodes(tasks, steps)])


def test_rollouts(learner: RLMetaLearner, config: RunConfig, steps: int) -> list[list[Episodes]]:
    """The episodes before and after each adaptation step on the run's test tasks, batch by batch: the rollouts
    ``adaptation_test`` averages (the same tasks, batches and noise)."""
    tasks = build_tasks(config, "test")
    assert isinstance(tasks, RLTasks)
    return [learner.adaptation_episodes(batch.tasks, steps) for batch in tasks.episodes(config.test.episodes)]


def curve_of(batches: list[list[Episodes]]) -> list[EvalResult]:
    """The mean return over the tasks before and after each adaptation step."""
    return returns_curve(torch.cat([torch.stack([e.returns() for e in episodes], dim=1) for episodes in batches]))


def episode_lengths(batches: list[list[Episodes]]) -> list[float]:
    """Mean episode length before and after each adaptation step."""
    lengths = [torch.cat([episodes[k].lengths() for episodes in batches]) for k in range(len(batches[0]))]
    return [float(step[step > 0].mean()) for step in lengths]  # a transition budget's dropped episodes last 0


def measure(
    run: Path, changes: dict[str, Any], goal: tuple[float, float] | None, repeats: int, lengths: bool
) -> dict[str, Any]:
    learner, config = load_learner(run)
    if changes:
        learner, config = learner_with(learner, config, changes)
    if not isinstance(learner, RLMetaLearner):
        raise SystemExit(f"{run} is not a meta-RL run")
    steps = config.test.inner_steps if config.test.inner_steps is not None else learner.test_inner_steps
    if goal is not None:
        curve = curve_on_goal(learner, goal, repeats, steps)
    else:
        batches = test_rollouts(learner, config, steps)
        curve = curve_of(batches)
    points = [{"steps": k, "return": r.mean, "ci95": r.ci95, "tasks": r.episodes} for k, r in enumerate(curve)]
    if lengths and goal is None:
        for point, length in zip(points, episode_lengths(batches), strict=True):
            point["episode_length"] = length
    return {"run": str(run), "set": changes, "goal": None if goal is None else list(goal), "curve": points}


def main() -> None:
    p = parser(__doc__ or "", data=False)
    p.add_argument("runs", type=Path, nargs="+", help="meta-RL run folders")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a test setting to change")
    p.add_argument("--goal", default=None, help="x,y: one goal instead of the run's test tasks")
    p.add_argument("--maml-code-goal", action="store_true", help="the goal of the MAML code's test script")
    p.add_argument("--repeats", type=int, default=40, help="copies of the goal, each with its own rollout noise")
    p.add_argument("--lengths", action="store_true", help="each step's mean episode length on the test tasks")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    changes = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    goal = maml_code_goal() if args.maml_code_goal else (
        tuple(float(v) for v in args.goal.split(",")) if args.goal else None)
    results = [measure(run, changes, goal, args.repeats, args.lengths) for run in args.runs]  # type: ignore[arg-type]
    if args.json:
        print(json.dumps({"machine": machine(), "results": results}, indent=2))
        return
    for result in results:
        curve = ", ".join(f"{r['return']:.2f} ± {r['ci95']:.2f}" + (f" (length {r['episode_length']:.1f})"
                                                                     if "episode_length" in r else "")
                          for r in result["curve"])
        print(f"{result['run']} {result['set'] or ''} {result['goal'] or 'test tasks'}: {curve}")


if __name__ == "__main__":
    main()
