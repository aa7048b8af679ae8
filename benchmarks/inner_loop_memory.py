"""Peak memory of second-order MAML against the number of inner steps, with and without
checkpointing the inner loop (``MAML(..., checkpoint_inner=True)``, config
``algorithm.checkpoint_inner=true``).

The work is the MAML paper's Omniglot meta-update (Conv4, 5-way 1-shot, 15 queries per class,
meta-batch 32, inner lr 0.4; ``--ways``, ``--shots`` and ``--queries`` for larger support sets).
Each configuration runs in a fresh process so that its peak RSS is its own, and a baseline
process that loads the batch and builds the model but takes no step is subtracted.

    python benchmarks/inner_loop_memory.py --steps 1 2 5 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from common import child_peak_rss_mib, emit, machine, own_peak_rss_mib, parser

import fastadapt as fa


def _child(args: argparse.Namespace) -> None:
    """One meta-update (none for the baseline) on the batch saved by the parent."""
    batch = torch.load(args.batch, weights_only=False)
    torch.manual_seed(0)
    learner = fa.MAML(fa.nn.Conv4(1, args.ways, pool="stride"), inner_lr=0.4, inner_steps=max(args.child, 1),
                      checkpoint_inner=args.checkpoint, vmap=False)
    if args.child > 0:
        learner.meta_backward(batch)  # as meta_train: task by task
    print(own_peak_rss_mib())


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 10])
    p.add_argument("--meta-batch", type=int, default=32)
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per setting (the median is reported)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        _child(args)
        return

    dataset = fa.datasets.Omniglot(args.data_dir, split="train", rotations=True, cache_dir=args.cache_dir)
    scratch = tempfile.TemporaryDirectory()
    batch_file = Path(scratch.name) / "batch.pt"
    tasks = fa.FewShotTasks(dataset, args.ways, args.shots, args.queries, seed=0)
    torch.save(tasks.sample(args.meta_batch), batch_file)
    del dataset, tasks

    def peak(steps: int, checkpoint: bool) -> float:
        command = [
            sys.executable, __file__, "--child", str(steps), "--batch", str(batch_file), "--ways", str(args.ways),
            "--threads", str(torch.get_num_threads()),
        ]
        command += ["--checkpoint"] if checkpoint else []
        return statistics.median(child_peak_rss_mib(command, cwd=Path(__file__).parent) for _ in range(args.repeats))

    baseline = peak(0, False)
    rows = []
    for steps in args.steps:
        plain, checkpointed = peak(steps, False) - baseline, peak(steps, True) - baseline
        rows.append({"inner_steps": steps, "plain_mib": round(plain, 1), "checkpointed_mib": round(checkpointed, 1)})
    for row in rows:
        row["plain_vs_1_step"] = round(row["plain_mib"] / rows[0]["plain_mib"], 2)
        row["checkpointed_vs_1_step"] = round(row["checkpointed_mib"] / rows[0]["checkpointed_mib"], 2)
    if args.json:
        task = {"ways": args.ways, "shots": args.shots, "queries": args.queries, "meta_batch": args.meta_batch}
        report = {"machine": machine(), "task": task, "baseline_mib": round(baseline, 1), "rows": rows}
        print(json.dumps(report, indent=2))
        return
    emit(rows, False, f"peak RSS over a {baseline:.0f} MiB baseline, one second-order meta-update of "
                      f"{args.meta_batch} {args.ways}-way {args.shots}-shot tasks")


if __name__ == "__main__":
    main()
