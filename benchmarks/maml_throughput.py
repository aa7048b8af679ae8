"""MAML meta-training throughput and peak memory: fastadapt against learn2learn, higher and torchopt.

The work is the MAML paper's Omniglot setting: Conv4 (64 channels, strided convolutions, batch
norm on batch statistics) on 1x28x28 images, 5-way 1-shot with 15 queries per class, meta-batch
32, 1 inner step of SGD with lr 0.4, Adam (lr 1e-3) on the meta-gradient; and the 20-way variant
(1-shot, 5 inner steps of lr 0.1, meta-batch 16). Every library gets the same network, the same
initial weights and the same pre-sampled task batches. Timings are interleaved (each library
runs ``--chunk`` meta-updates in turn, for ``--rounds`` rounds) so that ratios hold on a noisy
machine; peak memory is measured in a fresh child process per library, over the baseline of a
child that loads everything and trains nothing. Libraries that are not installed are skipped
(``benchmarks/install_anchors.sh`` installs them). ``--model resnet18`` replaces Conv4 by the
torchvision-style ResNet-18 of ``examples/models.py`` (standard ``nn.BatchNorm2d`` with running
statistics; ``--width`` is its first stage's width, 64 in torchvision): a user's own model.

On a GPU (``--device cuda``) each timed chunk ends with a device synchronization, memory is the
peak of CUDA allocations during a library's meta-updates over what was allocated before them
(the model, its optimizer state and the batches), and ``--vmap`` adds fastadapt's vmap mode,
which runs the meta-batch as one batched graph.

    python benchmarks/maml_throughput.py --threads 2
    python benchmarks/maml_throughput.py --setting 20w1s --json
    python benchmarks/maml_throughput.py --device cuda --vmap --json
    python benchmarks/maml_throughput.py --model resnet18 --width 64 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anchors
import torch
import torch.nn.functional as F
from common import child_peak_rss_mib, emit, machine, own_peak_rss_mib, parser

import fastadapt as fa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import models as user_models  # noqa: E402  (examples/models.py)

SETTINGS = {
    "5w1s": dict(ways=5, shots=1, queries=15, meta_batch=32, inner_steps=1, inner_lr=0.4),
    "20w1s": dict(ways=20, shots=1, queries=15, meta_batch=16, inner_steps=5, inner_lr=0.1),
}
Step = Callable[[fa.TaskBatch], None]


def _fastadapt(model: torch.nn.Module, s: dict, first_order: bool, vmap: bool = False) -> Step:
    learner = fa.MAML(model, inner_lr=s["inner_lr"], inner_steps=s["inner_steps"], first_order=first_order, vmap=vmap)
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)

    def step(batch: fa.TaskBatch) -> None:  # what meta_train does
        optimizer.zero_grad(set_to_none=True)
        learner.meta_backward(batch)
        optimizer.step()

    return step


def _task_by_task(parameters, task_loss: Callable[[fa.Task], torch.Tensor]) -> Step:
    """A meta-update as the libraries' MAML examples write it: Adam on the mean query loss, each
    task's loss backpropagated as soon as it is computed."""
    optimizer = torch.optim.Adam(parameters, lr=1e-3)

    def step(batch: fa.TaskBatch) -> None:
        optimizer.zero_grad(set_to_none=True)
        for task in batch:
            (task_loss(task) / len(batch)).backward()
        optimizer.step()

    return step


def _learn2learn(model: torch.nn.Module, s: dict, first_order: bool) -> Step | None:
    l2l = anchors.load("learn2learn")
    if l2l is None:
        return None
    maml = l2l.algorithms.MAML(model, lr=s["inner_lr"], first_order=first_order)

    def task_loss(task: fa.Task) -> torch.Tensor:
        clone = maml.clone()
        for _ in range(s["inner_steps"]):
            clone.adapt(F.cross_entropy(clone(task.support_x), task.support_y))
        return F.cross_entropy(clone(task.query_x), task.query_y)

    return _task_by_task(maml.parameters(), task_loss)


def _higher(model: torch.nn.Module, s: dict, first_order: bool) -> Step | None:
    higher = anchors.load("higher")
    if higher is None or first_order:  # higher's untracked mode cuts the meta-gradient: no FOMAML
        return None
    inner = torch.optim.SGD(model.parameters(), lr=s["inner_lr"])

    def task_loss(task: fa.Task) -> torch.Tensor:
        with higher.innerloop_ctx(model, inner, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(s["inner_steps"]):
                diffopt.step(F.cross_entropy(fmodel(task.support_x), task.support_y))
            return F.cross_entropy(fmodel(task.query_x), task.query_y)

    return _task_by_task(model.parameters(), task_loss)


def _torchopt(model: torch.nn.Module, s: dict, first_order: bool) -> Step | None:
    torchopt = anchors.load("torchopt")
    if torchopt is None or first_order:
        return None
    inner = torchopt.MetaSGD(model, lr=s["inner_lr"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(batch: fa.TaskBatch) -> None:
        optimizer.zero_grad(set_to_none=True)
        start = torchopt.extract_state_dict(model, by="reference", detach_buffers=True)
        inner_start = torchopt.extract_state_dict(inner)
        for task in batch:
            for _ in range(s["inner_steps"]):
                inner.step(F.cross_entropy(model(task.support_x), task.support_y))
            (F.cross_entropy(model(task.query_x), task.query_y) / len(batch)).backward()
            torchopt.recover_state_dict(model, start)
            torchopt.recover_state_dict(inner, inner_start)
        optimizer.step()

    return step


def _fastadapt_vmap(model: torch.nn.Module, s: dict, first_order: bool) -> Step:
    return _fastadapt(model, s, first_order, vmap=True)


LIBRARIES = {"fastadapt": _fastadapt, "learn2learn": _learn2learn, "higher": _higher, "torchopt": _torchopt,
             "fastadapt-vmap": _fastadapt_vmap}


def _batches(args, s: dict, count: int) -> list[fa.TaskBatch]:
    dataset = fa.datasets.Omniglot(args.data_dir, split="train", rotations=True, cache_dir=args.cache_dir)
    tasks = fa.FewShotTasks(dataset, s["ways"], s["shots"], s["queries"], seed=0)
    return [tasks.sample(s["meta_batch"]) for _ in range(count)]


def _model(s: dict, device: torch.device, args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(0)
    if args.model == "resnet18":
        return user_models.ResNet18(s["ways"], in_channels=1, width=args.width).to(device)
    return fa.nn.Conv4(1, s["ways"], hidden=64, pool="stride").to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cuda_peak_mib(step: Step, batches: list[fa.TaskBatch], device: torch.device) -> float:
    """Peak CUDA memory of three meta-updates over what was allocated before them."""
    _sync(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    for i in range(3):
        step(batches[i % len(batches)])
    _sync(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def _child(args) -> None:
    """A few meta-updates of one library (or none: the baseline) on the batches saved by the parent,
    so that the parent can read this process's peak RSS without the dataset loading in it."""
    s = SETTINGS[args.setting]
    batches = torch.load(args.batches, weights_only=False)
    if args.child != "baseline":
        step = LIBRARIES[args.child](_model(s, torch.device("cpu"), args), s, args.first_order)
        for i in range(args.chunk):
            step(batches[i % len(batches)])
    print(own_peak_rss_mib())


def _peak_rss_mib(args, library: str, first_order: bool, batches_file: Path) -> float:
    command = [sys.executable, __file__, "--child", library, "--setting", args.setting, "--chunk", "3",
               "--batches", str(batches_file), "--threads", str(torch.get_num_threads()), "--model", args.model,
               "--width", str(args.width)]
    if first_order:
        command.append("--first-order")
    return child_peak_rss_mib(command, cwd=Path(__file__).parent)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--setting", choices=sorted(SETTINGS), default="5w1s")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--chunk", type=int, default=5, help="meta-updates per library per round")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--model", choices=("conv4", "resnet18"), default="conv4")
    p.add_argument("--width", type=int, default=64, help="ResNet-18's first stage width")
    p.add_argument("--vmap", action="store_true", help="also time fastadapt's vmap mode")
    p.add_argument("--first-order", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--batches", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        _child(args)
        return
    s = SETTINGS[args.setting]
    device = torch.device(args.device)
    libraries = {name: make for name, make in LIBRARIES.items() if args.vmap or name != "fastadapt-vmap"}
    batches = [batch.to(device) for batch in _batches(args, s, 8)]
    scratch = tempfile.TemporaryDirectory()
    batches_file = Path(scratch.name) / "batches.pt"
    torch.save(batches[:2], batches_file)
    rows = []
    for first_order in (False, True):
        steps = {name: make(_model(s, device, args), s, first_order) for name, make in libraries.items()}
        steps = {name: step for name, step in steps.items() if step is not None}
        for step in steps.values():  # warm-up
            step(batches[0])
        rates: dict[str, list[float]] = {name: [] for name in steps}
        for round_ in range(args.rounds):
            for name, step in steps.items():
                _sync(device)
                start = time.perf_counter()
                for i in range(args.chunk):
                    step(batches[(round_ * args.chunk + i) % len(batches)])
                _sync(device)
                rates[name].append(args.chunk * s["meta_batch"] / (time.perf_counter() - start))
        order = "first" if first_order else "second"
        if device.type == "cuda":
            for name, step in steps.items():
                rows.append({
                    "order": order, "library": name, "tasks_per_s": round(statistics.median(rates[name]), 2),
                    "vs_fastadapt": None,
                    "peak_cuda_over_resident_mib": round(_cuda_peak_mib(step, batches, device), 1),
                })
        else:
            baseline = _peak_rss_mib(args, "baseline", first_order, batches_file)
            for name in steps:
                peak = _peak_rss_mib(args, name, first_order, batches_file)
                rows.append({
                    "order": order, "library": name, "tasks_per_s": round(statistics.median(rates[name]), 2),
                    "vs_fastadapt": None, "peak_rss_mib": round(peak, 1),
                    "peak_over_baseline_mib": round(peak - baseline, 1),
                })
        ours = next(r for r in rows if r["library"] == "fastadapt" and r["order"] == order)
        for r in rows:
            if r["order"] == ours["order"]:
                r["vs_fastadapt"] = round(ours["tasks_per_s"] / r["tasks_per_s"], 2)
    if args.json:
        report = {
            "machine": machine(), "model": args.model, "width": args.width, "setting": s,
            "rounds": args.rounds, "chunk": args.chunk, "rows": rows,
        }
        print(json.dumps(report, indent=2))
        return
    emit(rows, False, f"MAML {args.setting}, {args.model}: {s}\n(vs_fastadapt: fastadapt's tasks/s over this row's)")

if __name__ == "__main__":
    main()
