"""The fastadapt command: end to end on the embedded data, and one clear line for bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastadapt.cli import main

TINY = ["train.steps=30", "train.val_every=15", "train.val_episodes=40", "test.episodes=60", "--no-progress"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_run(glyphs_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default job (ProtoNet on glyphs), shortened, run once for the module."""
    run_dir = tmp_path_factory.mktemp("runs") / "default"
    assert main(["train", "--run-dir", str(run_dir), "--data-dir", str(glyphs_root), *TINY]) == 0
    return run_dir


def test_default_job_learns_held_out_classes(trained_run: Path) -> None:
    result = json.loads((trained_run / "result.json").read_text())
    assert result["preset"] == "protonet-glyphs-5w1s" and result["test"]["episodes"] == 60
    # 5-way chance is 20%: 30 updates on the training scripts already transfer to unseen scripts
    assert result["test"]["accuracy"] - result["test"]["ci95"] > 0.4
    assert {"config.yaml", "metrics.jsonl", "best.pt", "last.pt", "result.json"} <= {p.name for p in trained_run.iterdir()}


def test_eval_reproduces_the_test_result(trained_run: Path, glyphs_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "eval", str(trained_run), "--json", "--data-dir", str(glyphs_root))
    assert code == 0
    printed = json.loads(out)
    stored = json.loads((trained_run / "result.json").read_text())["test"]
    assert printed["accuracy"] == pytest.approx(stored["accuracy"]) and printed["ci95"] == pytest.approx(stored["ci95"])
    assert printed["episodes"] == 60
    code, out, _ = _run(capsys, "eval", str(trained_run / "last.pt"), "--episodes", "20", "--data-dir", str(glyphs_root))
    assert code == 0 and "accuracy" in out and "20 episodes" in out


def test_resume_continues_a_run(trained_run: Path, glyphs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "train", "--resume", str(trained_run), "--no-progress")
    assert code == 0 and "test accuracy" in out


def test_presets_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "presets")
    assert code == 0 and "maml-omniglot-5w1s" in out and "protonet-glyphs-5w1s" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--preset", "mamll-omniglot-5w1s"], "unknown preset 'mamll-omniglot-5w1s'"),
        (["train", "--epochs", "3"], "unrecognized arguments: --epochs"),
        (["train", "train.stepz=3"], "did you mean 'train.steps'"),
        (["train", "task.shots=-1"], "task.shots must be at least 1"),
        (["train", "task.ways=1000"], "1000-way tasks"),
        (["train", "--preset", "maml-omniglot-5w1s"], "Omniglot is not in .*--download"),
        (["eval", "nowhere"], "no checkpoint at nowhere"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    argv: list[str], message: str, glyphs_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    if argv[0] == "train" and "maml-omniglot-5w1s" not in argv:
        argv = [*argv, "--data-dir", str(glyphs_root)]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    _, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and re.search(message, lines[0]), err


def test_corrupt_archive_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "omniglot"
    folder.mkdir()
    (folder / "images_background.zip").write_bytes(b"PK\x03\x04 truncated")
    (folder / "images_evaluation.zip").write_bytes(b"PK\x03\x04 truncated")
    code, _, err = _run(capsys, "train", "--preset", "protonet-omniglot-5w1s", "--data-dir", str(tmp_path), "--run-dir", str(tmp_path / "run"))
    assert code == 2 and "corrupt or truncated" in err and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from fastadapt.errors import ConfigError

    with pytest.raises(ConfigError):
        main(["--debug", "train", "--preset", "nope"])


def test_console_script_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "fastadapt", "presets"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "maml-sinusoid" in done.stdout
