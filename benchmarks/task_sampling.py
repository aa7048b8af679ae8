"""Tasks per second of ``FewShotTasks`` on Omniglot (vinyals train, rotations), on one core.

    python benchmarks/task_sampling.py [--data-dir ../shared/data] [--json]
"""

from __future__ import annotations

from functools import partial

import torch
from common import emit, parser, rate

import fastadapt as fa


def main() -> None:
    args = parser(__doc__).parse_args()
    torch.set_num_threads(args.threads or 1)
    train = fa.datasets.Omniglot(args.data_dir, split="train", rotations=True, cache_dir=args.cache_dir)
    rows = []
    for ways, shots, queries in ((5, 1, 15), (5, 5, 15), (20, 1, 15), (60, 1, 5)):
        tasks = fa.FewShotTasks(train, ways, shots, queries, seed=0)
        for batch in (1, 32):
            rows.append({
                "task": f"{ways}-way {shots}-shot {queries}-query",
                "batch": batch,
                "tasks/s": rate(partial(tasks.sample, batch), batch),
            })
    emit(rows, args.json, f"FewShotTasks.sample on {train!r}")


if __name__ == "__main__":
    main()
