"""Second-order MAML meta-updates with the per-task loop against ``torch.func.vmap``.

The MAML-paper Omniglot work: strided Conv4 on 1x28x28, 5-way 1-shot with 15 queries per class,
meta-batch 32, one inner step of 0.4, Adam. Each mode runs in its own process so that its peak
memory is its own.

    python benchmarks/loop_vs_vmap.py [--steps 5] [--device cpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
from common import emit, parser, peak_rss_mib

import fastadapt as fa


def measure(mode: str, steps: int, device: str, first_order: bool) -> dict[str, object]:
    dataset = fa.datasets.ClassDataset(
        torch.randint(0, 256, (1200 * 20, 1, 28, 28), dtype=torch.uint8), torch.arange(1200).repeat_interleave(20),
        [f"c{i}" for i in range(1200)],
    )
    tasks = fa.FewShotTasks(dataset, 5, 1, 15, seed=0, device=device)
    learner = fa.MAML(fa.nn.Conv4(1, 5, pool="stride"), 0.4, 1, first_order=first_order, vmap=mode == "vmap").to(device)
    optimizer = torch.optim.Adam(learner.parameters(), 1e-3)
    batches = [tasks.sample(32) for _ in range(steps + 1)]
    before = peak_rss_mib()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i, batch in enumerate(batches):
        if i == 1:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        optimizer.zero_grad()
        learner.meta_backward(batch)  # what the trainer does: task by task in the loop, at once under vmap
        optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else peak_rss_mib() - before
    return {"mode": mode, "order": "first" if first_order else "second", "tasks/s": 32 / seconds, "peak MiB": peak}


def main() -> None:
    p = parser(__doc__, data=False)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", nargs=2, metavar=("MODE", "ORDER"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args.child[0], args.steps, args.device, args.child[1] == "first")))
        return
    rows = []
    for order in ("second", "first"):
        for mode in ("loop", "vmap"):
            command = [
                sys.executable, __file__, "--child", mode, order, "--steps", str(args.steps), "--device", args.device
            ]
            if args.threads:
                command += ["--threads", str(args.threads)]
            rows.append(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))
    emit(rows, args.json, "MAML meta-update, Omniglot 5-way 1-shot (15 queries), meta-batch 32: per-task loop vs vmap")


if __name__ == "__main__":
    main()
