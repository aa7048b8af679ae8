"""Meta-training throughput of one process against N torchrun processes on the same machine.

Runs the same short MAML job (Omniglot 5-way 1-shot, meta-batch 32, second order by default) as
one process with all the machine's threads and as N gloo processes with a share of the threads
each, interleaved, and reports tasks per second from each run's own training time.

    python benchmarks/distributed_scaling.py --processes 2 --steps 20
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import emit, parser


def _run(command: list[str], run_dir: Path, env: dict[str, str]) -> float:
    subprocess.run(command + ["--run-dir", str(run_dir)], env=env, check=True, capture_output=True, timeout=3600)
    return json.loads((run_dir / "result.json").read_text())["train_time_s"]


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--preset", default="maml-omniglot-5w1s")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--meta-batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--overrides", nargs="*", default=[], help="more key=value settings (e.g. algorithm.first_order=true)"
    )
    args = p.parse_args()
    cores = args.threads or os.cpu_count() or 1
    job = [
        "train", "--preset", args.preset, "--no-progress", f"dataset.data_dir={args.data_dir}",
        f"train.steps={args.steps}", f"train.meta_batch={args.meta_batch}", f"train.val_every={args.steps}",
        "train.val_episodes=1", "test.episodes=1", *args.overrides,
    ]
    single = [sys.executable, "-m", "fastadapt", *job, "--threads", str(cores)]
    multi = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.processes}",
             "-m", "fastadapt", *job, "--threads", str(max(1, cores // args.processes))]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // args.processes))}
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for name, command in (("1 process", single), (f"{args.processes} processes", multi)):
                seconds = _run(command, Path(scratch) / f"{repeat}-{len(rows)}", env)
                rows.append({"run": name, "repeat": repeat, "train_s": round(seconds, 1),
                             "tasks_per_s": round(args.steps * args.meta_batch / seconds, 2)})
    title = f"{args.preset}: {args.steps} meta-updates of {args.meta_batch} tasks, {cores} threads in all"
    emit(rows, args.json, title)


if __name__ == "__main__":
    main()
