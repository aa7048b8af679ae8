"""`fastadapt data list | info | prepare | verify` on a small CIFAR-100 release in its official format."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import run_cli
from releases import write_cifar

from fastadapt.datasets import CIFARFS
from fastadapt.datasets.release import Source


def test_list_shows_every_benchmark_and_its_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cifar(tmp_path / "cifar100")
    code, out, _ = run_cli(capsys, "data", "list", "--data-dir", str(tmp_path))
    assert code == 0
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert set(lines) == {"omniglot", "miniimagenet", "tieredimagenet", "cifarfs", "fc100", "cub"}
    assert lines["cifarfs"][1:4] == ["present", "no", "64/16/20"] and lines["fc100"][3] == "60/20/20"
    assert lines["miniimagenet"][1] == "missing"


def test_prepare_then_info_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cifar(tmp_path / "cifar100")
    code, out, _ = run_cli(capsys, "data", "prepare", "cifarfs", "--data-dir", str(tmp_path))
    assert code == 0
    splits = "train 64 classes / 192 images, val 16 classes / 48 images, test 20 classes / 60 images"
    assert f"300 images of 3x32x32 ({splits})" in out
    code, out, _ = run_cli(capsys, "data", "info", "fc100", "--data-dir", str(tmp_path), "--checksums")
    assert code == 0
    assert "cifar-100-python.tar.gz: present" in out and "md5 eb9058c3a382ffc7106e4002c42a8d85" in out
    assert "checksum differs from the published md5" in out  # a fixture, not the official archive
    assert "decoded: " + str(tmp_path / "cifar100" / "cifar100-32px.pt") in out and "60 train / 20 val / 20 test" in out
    code, out, _ = run_cli(capsys, "data", "verify", "fc100", "--data-dir", str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 0 and report["decoded"]["splits"]["test"] == {"classes": 20, "images": 60}


def test_matching_checksum_is_reported_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = write_cifar(tmp_path / "cifar100")
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(CIFARFS.release, "sources", (Source(archive.name, (), md5=digest),))
    code, out, _ = run_cli(capsys, "data", "info", "cifarfs", "--data-dir", str(tmp_path), "--checksums", "--json")
    assert code == 0 and json.loads(out)["sources"][0]["checksum"] == "ok"


def test_bad_names_and_missing_data_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "data", "info", "minimagenet", "--data-dir", str(tmp_path))
    assert code == 2 and "unknown dataset 'minimagenet'; did you mean 'miniimagenet'?" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "data", "prepare", "cub", "--data-dir", str(tmp_path))
    assert code == 2 and "CUB-200-2011 is not in" in err and "--download" in err
    code, _, err = run_cli(
        capsys, "data", "prepare", "miniimagenet", "--data-dir", str(tmp_path), "--source", str(tmp_path / "nowhere")
    )
    assert code == 2 and "nowhere is not a folder" in err and "Traceback" not in err


def test_train_and_eval_a_cifar_fs_preset_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CIFAR-FS preset runs from the CLI on the official-format archive: augmented 20-way
    training episodes, validation, test; `eval` then reproduces the test figure."""
    write_cifar(tmp_path / "data" / "cifar100")
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys, "train", "--preset", "protonet-cifarfs-5w1s", "--data-dir", str(tmp_path / "data"),
        "--run-dir", str(run), "--json", "--no-progress", "train.steps=4", "train.val_every=2", "train.val_episodes=4",
        "test.episodes=6", "task.queries=2", "train_task.queries=2", "model.hidden=8",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["test"]["episodes"] == 6 and 0 <= result["test"]["accuracy"] <= 1
    code, out, _ = run_cli(capsys, "eval", str(run), "--json")
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(result["test"]["accuracy"])
