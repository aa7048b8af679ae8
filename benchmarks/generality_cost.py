"""The cost of running any nn.Module: fastadapt's own Conv4 MAML path against an earlier revision.

Both versions meta-train the same Conv4 (the MAML paper's Omniglot network, 5-way 1-shot, 15
queries, meta-batch 32, one inner step, second order and first order) on the same pre-sampled
task batches of the real Omniglot. Each version runs in its own child process (two versions of a
package cannot share one), and the children alternate, ``--rounds`` times each, so that both see
the same machine load; the table gives each version's median tasks/s and the ratio.

    python benchmarks/generality_cost.py --base c1b9673 --threads 1 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import REPO, emit, machine, parser

SETTING = dict(ways=5, shots=1, queries=15, meta_batch=32, inner_steps=1, inner_lr=0.4)


def _child(args: argparse.Namespace) -> None:
    """Time ``--chunk`` meta-updates of the fastadapt found on sys.path; print tasks per second."""
    import fastadapt as fa

    torch.set_num_threads(args.threads or 1)
    batches = torch.load(args.batches, weights_only=False)
    torch.manual_seed(0)
    model = fa.nn.Conv4(1, SETTING["ways"], hidden=64, pool="stride")
    learner = fa.MAML(model, inner_lr=SETTING["inner_lr"], inner_steps=SETTING["inner_steps"],
                      first_order=args.first_order, vmap=False)
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)

    def step(batch: fa.TaskBatch) -> None:
        optimizer.zero_grad(set_to_none=True)
        learner.meta_backward(batch)
        optimizer.step()

    step(batches[0])  # warm-up
    start = time.perf_counter()
    for i in range(args.chunk):
        step(batches[i % len(batches)])
    print(args.chunk * SETTING["meta_batch"] / (time.perf_counter() - start))


def _checkout(revision: str, folder: Path) -> Path:
    """The ``src`` folder of ``revision``, exported from git into ``folder``."""
    command = ["git", "-C", str(REPO), "archive", revision, "src"]
    archive = subprocess.run(command, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def _rate(src: Path, args: argparse.Namespace, batches: Path, first_order: bool) -> float:
    command = [sys.executable, __file__, "--child", "--batches", str(batches), "--chunk", str(args.chunk),
               "--threads", str(args.threads or 1)] + (["--first-order"] if first_order else [])
    env = {"PYTHONPATH": f"{src}:{Path(__file__).parent}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=Path(__file__).parent)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--base", default="HEAD", help="the git revision to compare the working tree with")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--chunk", type=int, default=10, help="meta-updates per child")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--first-order", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batches", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args)
        return
    import fastadapt as fa

    scratch = Path(tempfile.mkdtemp())
    dataset = fa.datasets.Omniglot(args.data_dir, split="train", rotations=True, cache_dir=args.cache_dir)
    tasks = fa.FewShotTasks(dataset, SETTING["ways"], SETTING["shots"], SETTING["queries"], seed=0)
    batches = scratch / "batches.pt"
    torch.save([tasks.sample(SETTING["meta_batch"]) for _ in range(4)], batches)
    base = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.base], check=True, capture_output=True,
                          text=True).stdout.strip()
    versions = {base: _checkout(base, scratch), "working tree": REPO / "src"}
    rows = []
    for first_order in (False, True):
        rates: dict[str, list[float]] = {name: [] for name in versions}
        for _ in range(args.rounds):
            for name, src in versions.items():
                rates[name].append(_rate(src, args, batches, first_order))
        medians = {name: statistics.median(values) for name, values in rates.items()}
        for name, values in rates.items():
            rows.append({
                "order": "first" if first_order else "second",
                "version": name,
                "tasks_per_s": round(medians[name], 2),
                "spread": [round(min(values), 2), round(max(values), 2)],
                "vs_base": round(medians[name] / medians[base], 3),
            })
    if args.json:
        print(json.dumps({"machine": machine(), "setting": SETTING, "rounds": args.rounds, "chunk": args.chunk,
                          "threads": args.threads or 1, "rows": rows}, indent=2))
        return
    emit(rows, False, f"Conv4 MAML 5w1s, meta-batch 32: the working tree against {base}")


if __name__ == "__main__":
    main()
