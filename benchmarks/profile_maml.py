"""Where the time of one second-order MAML meta-update goes, by operator (``torch.profiler``).

The MAML-paper Omniglot work (strided Conv4, 5-way 1-shot, meta-batch 32) with ``--queries``
query images per class.

    python benchmarks/profile_maml.py [--queries 5] [--threads 1]
"""

from __future__ import annotations

import torch
from common import machine, parser

import fastadapt as fa


def main() -> None:
    p = parser(__doc__, data=False)
    p.add_argument("--queries", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads or 1)
    dataset = fa.datasets.ClassDataset(
        torch.randint(0, 256, (200 * 20, 1, 28, 28), dtype=torch.uint8), torch.arange(200).repeat_interleave(20),
        [f"c{i}" for i in range(200)],
    )
    batch = fa.FewShotTasks(dataset, 5, 1, args.queries, seed=0).sample(32)
    learner = fa.MAML(fa.nn.Conv4(1, 5, pool="stride"), inner_lr=0.4, inner_steps=1)
    for _ in range(2):  # warm-up
        learner.meta_loss(batch)[0].backward()
    with torch.profiler.profile() as profile:
        learner.meta_loss(batch)[0].backward()
    print(f"machine: {machine()}")
    print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
