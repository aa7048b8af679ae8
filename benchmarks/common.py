"""Shared benchmark plumbing: the reference Omniglot, timing, a machine description, output."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("FASTADAPT_TEST_DATA", REPO.parent / "shared" / "data"))


def parser(description: str, data: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if data:
        p.add_argument(
            "--data-dir", type=Path, default=DEFAULT_DATA, help="folder holding omniglot/ (default ../shared/data)"
        )
        p.add_argument("--cache-dir", type=Path, default=None, help="decoded-cache folder (default: per-user cache)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}")


def rate(fn: Callable[[], object], items: int, seconds: float = 3.0, warmup: int = 2) -> float:
    """Items per second of ``fn`` (which handles ``items`` items a call), timed for about ``seconds``."""
    for _ in range(warmup):
        fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls * items / (time.perf_counter() - start)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_peak_rss_mib() -> float:
    """This process's peak resident memory since it started its program (``VmHWM``). Unlike
    ``ru_maxrss``, it does not include the memory of the parent it was forked from."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child_peak_rss_mib(command: list[str], cwd: Path | None = None) -> float:
    """Peak resident memory of a fresh process running ``command``, which must end by printing
    ``own_peak_rss_mib()`` on its last line of output."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def emit(rows: list[dict[str, object]], as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps({"machine": machine(), "rows": rows}, indent=2))
        return
    print(f"{title}\nmachine: {machine()}")
    keys = list(rows[0])
    widths = [max(len(k), *(len(_fmt(r[k])) for r in rows)) for k in keys]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    for r in rows:
        print("  ".join(_fmt(r[k]).ljust(w) for k, w in zip(keys, widths, strict=True)))


def _fmt(value: object) -> str:
    return f"{value:,.1f}" if isinstance(value, float) else str(value)
