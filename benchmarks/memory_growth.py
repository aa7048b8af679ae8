"""Does memory grow over meta-training? RSS every 100 steps of a long run with validation and checkpoints.

A leak of a few kB per step (a tensor kept in a log, a graph held across steps) is invisible in a
short test and fatal in a three-day run. This runs the whole loop of ``fastadapt train`` (sampling,
meta-update, logging, validation, atomic checkpoints) and reports the resident memory at the start
and end and the growth rate over the second half.

    python benchmarks/memory_growth.py                      # MAML (2nd order), Omniglot 5-way 1-shot, 2000 steps
    python benchmarks/memory_growth.py --preset protonet-omniglot-5w1s --json
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import torch
from common import emit, machine, parser

from fastadapt.config import build_config, optimizer_for
from fastadapt.experiment import prepare
from fastadapt.train import meta_train


def rss_mib() -> float:
    """Current resident memory of this process."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--preset", default="maml-omniglot-5w1s")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--meta-batch", type=int, default=8)
    p.add_argument("--every", type=int, default=100, help="record RSS every this many steps")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = build_config(args.preset, [
        f"dataset.data_dir={args.data_dir}", f"train.steps={args.steps}", f"train.meta_batch={args.meta_batch}",
        "train.val_every=500", "train.val_episodes=100", "train.log_every=10",
    ])
    parts = prepare(config)
    learner, train_tasks, val_tasks = parts.learner, parts.train_tasks, parts.val_tasks
    samples: list[dict[str, float]] = []
    sample, steps_done, start = train_tasks.sample, [0], time.perf_counter()

    def record(step: int) -> None:
        rss = round(rss_mib(), 1)
        samples.append({"step": step, "rss_mib": rss, "elapsed_s": round(time.perf_counter() - start, 1)})

    def sample_and_record(n: int = 1):  # called once per meta-update
        if steps_done[0] % args.every == 0:
            record(steps_done[0])
        steps_done[0] += 1
        return sample(n)

    train_tasks.sample = sample_and_record  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as run_dir:
        meta_train(
            learner, train_tasks, args.steps, meta_batch=args.meta_batch, optimizer=optimizer_for(config, learner),
            val_tasks=val_tasks, val_every=500, val_episodes=100, run_dir=run_dir, config=config.to_dict(),
            progress=False,
        )
    record(args.steps)
    half = [s for s in samples if s["step"] >= args.steps // 2]
    growth = (half[-1]["rss_mib"] - half[0]["rss_mib"]) / (half[-1]["step"] - half[0]["step"]) * 1000
    summary = {
        "preset": args.preset, "steps": args.steps, "meta_batch": args.meta_batch,
        "rss_first_step_mib": samples[0]["rss_mib"], "rss_end_mib": samples[-1]["rss_mib"],
        "rss_max_mib": max(s["rss_mib"] for s in samples),
        "growth_second_half_mib_per_1000_steps": round(growth, 2),
    }
    if args.json:
        print(json.dumps({"machine": machine(), "summary": summary, "rss": samples}, indent=2))
        return
    emit(samples, False, "resident memory over meta-training")
    print("  ".join(f"{key} {value}" for key, value in summary.items()))

if __name__ == "__main__":
    main()
