"""A folder is held by one process at a time: a second process that would write it is refused in one line, the
hold nests within a process and ends with the process, however it ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastadapt.cli import main
from fastadapt.errors import CheckpointError
from fastadapt.storage import LOCK, exclusive, holds_files

TINY = ["--no-progress", "train.steps=2", "train.val_every=1", "train.val_episodes=2", "test.episodes=4"]

HOLD = "import sys, time; from fastadapt.storage import exclusive\nwith exclusive(sys.argv[1]):\n" \
       "    print('held', flush=True); time.sleep(60)\n"


def _holder(folder: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_folder_another_process_holds_is_refused_until_that_process_ends(tmp_path: Path) -> None:
    child = _holder(tmp_path / "run")
    try:
        with pytest.raises(CheckpointError, match=rf"run is in use by another process \(pid {child.pid}\)"), \
                exclusive(tmp_path / "run"):
            pass
    finally:
        child.kill()  # killed, not ended cleanly: the OS lock goes with it
        child.wait()
    with exclusive(tmp_path / "run"), exclusive(tmp_path / "run"):  # free again, and a hold nests
        assert (tmp_path / "run" / LOCK).read_text().strip() == str(os.getpid())


def test_training_into_a_held_run_folder_is_refused_and_leaves_it_alone(tmp_path: Path, glyphs_root: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    child = _holder(run)
    try:
        code = main(["train", "--run-dir", str(run), "--data-dir", str(glyphs_root), *TINY])
    finally:
        child.kill()
        child.wait()
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "in use by another process" in error[0]
    assert [p.name for p in run.iterdir()] == [LOCK]  # nothing of a run was written
    assert main(["train", "--run-dir", str(run), "--data-dir", str(glyphs_root), *TINY]) == 0  # free now
    assert (run / "result.json").is_file()


def test_a_folder_holding_only_its_lock_holds_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    assert not holds_files(folder)  # absent
    folder.mkdir()
    assert not holds_files(folder)
    with exclusive(folder):
        assert (folder / LOCK).exists() and not holds_files(folder)
    (folder / "metrics.jsonl").write_text("")
    assert holds_files(folder)
