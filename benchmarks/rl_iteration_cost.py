"""Seconds per MAML-RL meta-iteration, split into sampling and the outer update, at a given size.

    python benchmarks/rl_iteration_cost.py --family halfcheetah_vel --tasks 40 --trajectories 20 --horizon 200
    python benchmarks/rl_iteration_cost.py --family nav2d --tasks 20 --trajectories 20 --horizon 100

One iteration = pre-update rollouts, one VPG step per task, post-update rollouts, and the TRPO (or
PPO) step; ``--iterations`` of them are timed after one warm-up, with the policy of the paper
(2 x 100 tanh) at its initialisation.
"""

from __future__ import annotations

import time

import torch
from common import emit, parser

from fastadapt.rl import MAMLRL, GaussianPolicy, RLTasks, family


def main() -> None:
    p = parser(__doc__, data=False)
    p.add_argument("--family", default="halfcheetah_vel")
    p.add_argument("--tasks", type=int, default=40)
    p.add_argument("--trajectories", type=int, default=20)
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--outer", default="trpo", choices=("trpo", "ppo"))
    p.add_argument("--first-order", action="store_true")
    p.add_argument("--iterations", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads or 1)
    torch.manual_seed(0)
    tasks_family = family(args.family)
    policy = GaussianPolicy(tasks_family.obs_dim, tasks_family.act_dim)
    learner = MAMLRL(
        policy, tasks_family, trajectories=args.trajectories, horizon=args.horizon, outer=args.outer,
        first_order=args.first_order,
    )
    tasks = RLTasks(tasks_family, seed=0)
    rollouts = learner.collect
    spent = {"sampling": 0.0}

    def timed_rollouts(*a, **k):  # count the time spent in the simulators and the policy's sampling
        start = time.perf_counter()
        try:
            return rollouts(*a, **k)
        finally:
            spent["sampling"] += time.perf_counter() - start

    learner.collect = timed_rollouts  # type: ignore[method-assign]
    learner.outer_step(tasks.sample(args.tasks))
    spent["sampling"] = 0.0
    start = time.perf_counter()
    for _ in range(args.iterations):
        learner.outer_step(tasks.sample(args.tasks))
    total = (time.perf_counter() - start) / args.iterations
    sampling = spent["sampling"] / args.iterations
    steps = 2 * args.tasks * args.trajectories * args.horizon
    rows = [{
        "family": args.family, "size": f"{args.tasks} tasks x {args.trajectories} traj x {args.horizon} steps",
        "outer": args.outer + (" (first order)" if args.first_order else ""), "s/iteration": total,
        "sampling s": sampling, "update s": total - sampling, "env steps/s": steps / sampling,
    }]
    emit(rows, args.json, "MAML-RL meta-iteration cost")


if __name__ == "__main__":
    main()
