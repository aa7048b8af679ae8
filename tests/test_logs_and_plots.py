"""metrics.csv, TensorBoard records and the plots of a run."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_records
from PIL import Image

from fastadapt.cli import main
from fastadapt.errors import CheckpointError
from fastadapt.logs import TensorBoard
from fastadapt.plots import learning_curves

TINY = [
    "train.steps=20", "train.val_every=10", "train.val_episodes=10", "test.episodes=10", "train.log_every=5",
    "--no-progress", "--json",
]


@pytest.fixture(scope="module")
def two_runs(glyphs_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("runs")
    runs = [folder / "protonet", folder / "maml"]
    for run, preset in zip(runs, ("protonet-glyphs-5w1s", "maml-glyphs-5w1s"), strict=True):
        assert main(["train", "--preset", preset, "--run-dir", str(run), "--data-dir", str(glyphs_root), *TINY]) == 0
    return runs


def test_the_csv_holds_every_record_of_the_jsonl(two_runs: list[Path]) -> None:
    records = run_records(two_runs[0])
    with open(two_runs[0] / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(records) and {"step", "kind", "loss", "val_accuracy"} <= set(rows[0])
    for row, record in zip(rows, records, strict=True):
        assert int(row["step"]) == record["step"] and row["kind"] == record["kind"]
        if "val_accuracy" in record:
            assert float(row["val_accuracy"]) == pytest.approx(record["val_accuracy"])


def test_a_finished_run_has_its_curves_and_plot_overlays_runs(
    two_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Image.open(two_runs[0] / "curves.png") as image:
        assert image.width > 500
    assert main(["plot", *map(str, two_runs), "--out", str(tmp_path)]) == 0
    assert f"wrote {tmp_path / 'curves.png'}" in capsys.readouterr().out
    # overlaying two runs draws more than one of them: the pictures differ
    learning_curves(two_runs[:1], tmp_path / "one.png")
    assert (tmp_path / "one.png").read_bytes() != (tmp_path / "curves.png").read_bytes()


def test_plot_draws_the_adaptation_and_embedding_figures_of_runs(
    two_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = ["--figure", "steps", "--figure", "embedding"]
    assert main(["plot", *map(str, two_runs), "--out", str(tmp_path), *figures]) == 0
    out = capsys.readouterr().out
    for name in ("curves.png", "steps.png", "embedding.png"):
        assert f"wrote {tmp_path / name}" in out
        with Image.open(tmp_path / name) as image:
            assert image.width > 300
    assert main(["plot", str(two_runs[0]), "--figure", "sinusoid", "--out", str(tmp_path)]) == 2
    assert "draws sinusoid regression runs only" in capsys.readouterr().err


USERS_FIGURES = """
import sys
import matplotlib

matplotlib.use("svg")  # the backend a user chose (a notebook's inline one, say)
import fastadapt, fastadapt.plots, fastadapt.reproduce, fastadapt.rl
import torch
from fastadapt.reproduce.figures import figures_of_runs
from fastadapt.rl import MAMLRL, GaussianPolicy, Navigation2D
from fastadapt.rl.render import render

assert "matplotlib.pyplot" not in sys.modules, "importing fastadapt imported pyplot"
runs, out = sys.argv[1:3], sys.argv[3]
figures_of_runs(runs, ("steps", "embedding"), out)
learner = MAMLRL(GaussianPolicy(2, 2, hidden=(4,)), Navigation2D(), trajectories=2, horizon=5)
render(learner, torch.tensor([0.3, -0.2]), out + "/paths.png")
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert "matplotlib.pyplot" not in sys.modules, "drawing figures imported pyplot"
"""


def test_drawing_figures_keeps_the_users_backend_and_never_imports_pyplot(two_runs: list[Path], tmp_path: Path) -> None:
    """In a fresh interpreter (a clean ``sys.modules``): import fastadapt, draw every kind of figure through it."""
    done = subprocess.run([sys.executable, "-c", USERS_FIGURES, *map(str, two_runs), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert {"curves.png", "steps.png", "embedding.png", "paths.png"} <= {p.name for p in tmp_path.iterdir()}


def test_plotting_a_folder_that_is_not_a_run_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="has no metrics.jsonl"):
        learning_curves([tmp_path], tmp_path / "x.png")


def test_tensorboard_scalars_are_named_by_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    class FakeWriter:
        def __init__(self, log_dir: str) -> None:
            self.log_dir = log_dir

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            seen.append((tag, value, step))

        def flush(self) -> None:
            pass

    import sys
    import types

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    board = TensorBoard(tmp_path)
    board.log({"step": 7, "kind": "val", "val_accuracy": 0.5, "val_ci95": 0.1, "note": "text", "flag": True})
    assert seen == [("val/val_accuracy", 0.5, 7), ("val/val_ci95", 0.1, 7)]
