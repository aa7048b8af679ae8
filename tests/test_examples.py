"""The scripts in examples/ run end to end (with tiny budgets) and print accuracy with its CI."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from helpers import EXAMPLES

TINY = ["--steps", "2", "--meta-batch", "2", "--val-episodes", "5", "--episodes", "5"]
ACCURACY = re.compile(r"accuracy \d+\.\d+% ± \d+\.\d+% \(95% CI, 5 episodes\)")


def _run(name: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    module = importlib.import_module(name)
    module.main(argv)
    return [line for line in capsys.readouterr().out.splitlines() if ACCURACY.search(line)]


def test_mlp_on_float_features(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(_run("mlp_features", TINY, capsys)) == 2


def test_transformer_on_token_sequences(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _run("transformer_tokens", TINY, capsys)
    assert [line.split(" on ")[0] for line in lines] == ["Transformer ProtoNet", "Transformer MAML"]


def test_resnet18_maml_on_omniglot(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--data-dir", str(shared_data), "--width", "4", *TINY]
    assert len(_run("resnet18_maml_omniglot", argv, capsys)) == 1


def test_every_example_is_tested() -> None:
    scripts = {path.stem for path in EXAMPLES.glob("*.py")} - {"models"}
    assert scripts == {"mlp_features", "transformer_tokens", "resnet18_maml_omniglot"}
