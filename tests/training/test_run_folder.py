"""The run folder: config, log and csv, refusing to overwrite a run, resuming one, torn writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fastadapt.errors import CheckpointError
from fastadapt.training.folder import RunFolder


def test_a_new_run_writes_its_config_and_log(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    folder.create({"seed": 3})
    folder.log({"step": 1, "kind": "train", "loss": 0.5})
    folder.log({"step": 1, "kind": "val", "val_accuracy": 0.25})
    folder.close()
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()) == {"seed": 3}
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [record["kind"] for record in records] == ["train", "val"]
    assert (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0] == "step,kind,loss,val_accuracy"
    assert folder.file("last.pt") == tmp_path / "run" / "last.pt"


@pytest.mark.parametrize("marker", ["last.pt", "metrics.jsonl"])
def test_a_folder_that_holds_a_run_is_refused(tmp_path: Path, marker: str) -> None:
    (tmp_path / marker).write_text("")
    with pytest.raises(CheckpointError, match="already holds a run"):
        RunFolder(tmp_path).create(None)


def test_resuming_needs_a_run_and_removes_torn_writes(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="there is no run in"):
        RunFolder(tmp_path / "empty").reopen()
    with pytest.raises(CheckpointError, match="there is no run in None"):
        RunFolder(None).reopen()
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"done")
    (run / ".last.pt.abc123.tmp").write_bytes(b"half")
    RunFolder(run).reopen()
    assert sorted(p.name for p in run.iterdir()) == ["last.pt"]


def test_truncating_the_log_drops_later_and_torn_records(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "kind": "train"}\n{"step": 2, "kind": "train"}\n{"step": 3, "kind": "tr')
    RunFolder(tmp_path).truncate_log(1)
    assert log.read_text() == '{"step": 1, "kind": "train"}\n'


def test_only_the_writer_writes_and_no_folder_writes_nothing(tmp_path: Path) -> None:
    reader = RunFolder(tmp_path / "run", writer=False)
    reader.create({"seed": 0})
    reader.log({"step": 1})
    reader.close()
    assert not (tmp_path / "run").exists()
    memory = RunFolder(None)
    memory.create({"seed": 0})
    memory.log({"step": 1})
    memory.close()
    assert memory.file("last.pt") is None and memory.path is None
