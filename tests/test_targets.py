"""Your own model and dataset from the command line: ``model.target`` and ``dataset.target`` factories."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import glyph_folders, run_cli

from fastadapt.checkpoint import load_checkpoint
from fastadapt.cli import main
from fastadapt.config import build_config, resolve
from fastadapt.errors import ConfigError
from fastadapt.experiment import read_config
from fastadapt.targets import import_target

USER_FILES = {"badsyntax": "def f(:\n", "needsdep": "import not_installed_anywhere\n"}
MYNETS = '''
from torch import nn


def classifier(ways: int, hidden: int = 8) -> nn.Module:
    """An image classifier without batch norm: one logit per way."""
    return nn.Sequential(
        nn.Conv2d(1, hidden, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(hidden, ways)
    )


def encoder(hidden: int = 8) -> nn.Module:
    """An image encoder without head, for the embedding methods."""
    return nn.Sequential(
        nn.Conv2d(1, hidden, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def mlp(features: int, ways: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, ways))


def broken(**kwargs):
    raise ValueError("hidden must be even\\nsecond line of the message")


def not_a_module():
    return [1, 2]


WIDTH = 3
'''
MYDATA = '''
import torch
from torch.utils.data import Dataset

from fastadapt.datasets import ClassDataset


def features(split: str, classes: int = 8, per_class: int = 20, dims: int = 6) -> ClassDataset:
    """Random float features, a Gaussian blob per class, other classes in each split."""
    generator = torch.Generator().manual_seed(["train", "val", "test"].index(split))
    centers = 3 * torch.randn(classes, dims, generator=generator)
    x = centers.repeat_interleave(per_class, 0) + torch.randn(classes * per_class, dims, generator=generator)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return ClassDataset(x, labels, [f"{split}{c}" for c in range(classes)], split)


class Pairs(Dataset):
    """The same blobs as a plain map-style torch Dataset of (x, label) pairs."""

    def __init__(self, split: str, dims: int = 6) -> None:
        self.data = features(split, dims=dims)

    def __len__(self) -> int:
        return len(self.data.labels)

    def __getitem__(self, index: int):
        return self.data.examples[index], int(self.data.labels[index])


def not_a_dataset(split: str) -> list:
    return [(torch.zeros(6), 0)]
'''
FAST = {"train": {"steps": 3, "meta_batch": 2, "val_every": 3, "val_episodes": 4}, "test": {"episodes": 10}}


@pytest.fixture
def user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder holding the user's ``mynets.py`` and ``mydata.py`` (and two broken modules), made the current folder
    as a user's shell would; ``sys.path`` and the imported user modules are restored afterwards."""
    files = {"mynets": MYNETS, "mydata": MYDATA, **USER_FILES}
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    for name in files:
        sys.modules.pop(name, None)


def _config(folder: Path, **sections: dict) -> Path:
    """A config file of the user's, ``extends`` and sections as given, with the fast training schedule."""
    file = folder / "my.yaml"
    file.write_text(yaml.safe_dump({**FAST, **sections}, sort_keys=False))
    return file


def _one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The CLI's stderr for a run that must fail: exactly one line, no traceback, exit code 2."""
    code, _, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    "extends, model",
    [
        ("protonet-glyphs-5w1s", {"target": "mynets:encoder", "kwargs": {"hidden": 8}}),
        ("maml-glyphs-5w1s", {"target": "mynets:classifier", "kwargs": {"ways": 5}}),
    ],
    ids=["protonet-encoder", "maml-classifier"],
)
def test_own_model_trains_evaluates_and_predicts_from_the_cli(
    extends: str, model: dict, user_folder: Path, glyphs_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = user_folder / "run"
    config = _config(user_folder, extends=extends, model=model)
    argv = ["train", "--config", str(config), "--run-dir", str(run), "--data-dir", str(glyphs_root), "--no-progress"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    recorded = {"name": "custom", **model}
    assert yaml.safe_load((run / "config.yaml").read_text())["model"] == recorded  # without the preset's conv4 keys
    assert load_checkpoint(run / "best.pt")["config"]["model"] == recorded
    stored = json.loads((run / "result.json").read_text())["test"]
    code, out, err = run_cli(capsys, "eval", str(run), "--json")
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(stored["accuracy"]), err
    support, query = glyph_folders(glyphs_root, user_folder / "files")
    code, out, err = run_cli(capsys, "predict", str(run), "--support", str(support), "--query", str(query), "--json")
    printed = json.loads(out)
    assert code == 0 and len(printed["predictions"]) == 30, err
    assert set(printed["classes"]) == {folder.name for folder in support.iterdir()}


@pytest.mark.parametrize("target", ["mydata:features", "mydata:Pairs"], ids=["ClassDataset", "torch-Dataset"])
def test_own_dataset_of_features_trains_with_an_own_mlp(
    target: str, user_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = user_folder / "run"
    config = _config(
        user_folder, extends="maml-glyphs-5w1s", dataset={"target": target, "kwargs": {"dims": 6}},
        model={"target": "mynets:mlp", "kwargs": {"features": 6, "ways": 5}},
    )
    code, _, err = run_cli(capsys, "train", "--config", str(config), "--run-dir", str(run), "--no-progress", "--json")
    assert code == 0, err
    assert read_config(run).to_dict()["dataset"] == {"name": "custom", "target": target, "kwargs": {"dims": 6}}
    assert load_checkpoint(run / "best.pt")["metadata"] == {"preprocessing": None, "pixel_mean": None}
    code, out, err = run_cli(capsys, "eval", str(run), "--json", "--episodes", "5")
    assert code == 0 and json.loads(out)["episodes"] == 5, err
    line = _one_line_error(capsys, "predict", str(run), "--support", str(user_folder), "--query", str(user_folder))
    assert f"is a model of your own data ({target}), not of images: predict classifies image files" in line


BAD_TARGETS = {
    "malformed": (["model.target=mynets.encoder"], r"must be module:attribute, .* did you mean 'mynets:encoder'"),
    "no-module": (["model.target=nowhere_at_all:net"], "no module 'nowhere_at_all' to import: install it, add its"),
    "module-fails": (["model.target=badsyntax:f"], r"importing badsyntax failed: SyntaxError: .*badsyntax.py, line 1"),
    "dependency-missing": (["model.target=needsdep:f"], "importing needsdep failed: ModuleNotFoundError: "),
    "no-attribute": (["model.target=mynets:encodr"], r"mynets.py has no attribute 'encodr'; did you mean 'encoder'\?"),
    "not-callable": (["model.target=mynets:WIDTH"], r"is not a function or class to call \(its type is int\)"),
    "factory-raises": (["model.target=mynets:broken"], "'mynets:broken' raised ValueError: hidden must be even$"),
    "bad-kwargs": (["model.target=mynets:encoder", "model.kwargs={depth: 3}"], "raised TypeError: .*'depth'"),
    "wrong-type": (["model.target=mynets:not_a_module"], "returned a list, not a torch.nn.Module$"),
    "too-few-logits": (
        ["model.target=mynets:classifier", "model.kwargs={ways: 3}", "algorithm.name=maml", "train_task.ways=5"],
        r"outputs \(5, 3\) for inputs of shape \(5, 1, 28, 28\): maml needs 5 logits per example",
    ),
    "wrong-input": (
        ["model.target=mynets:mlp", "model.kwargs={features: 6, ways: 5}"],
        r"does not fit the data: on inputs of shape \(20, 1, 28, 28\) it raised RuntimeError",
    ),
    "dataset-wrong-type": (
        ["dataset.target=mydata:not_a_dataset", "model.target=mynets:encoder"],
        "'mydata:not_a_dataset' returned a list, not a fastadapt ClassDataset or a torch.utils.data.Dataset",
    ),
    "builtin-key": (
        ["model.target=mynets:encoder", "model.hidden=32"],
        r"model.hidden does not apply to model.name=custom \(its keys: \['kwargs', 'target'\]\)",
    ),
}


@pytest.mark.parametrize("overrides, message", BAD_TARGETS.values(), ids=BAD_TARGETS.keys())
def test_a_bad_target_is_one_line_and_exit_code_2(
    overrides: list[str], message: str, user_folder: Path, glyphs_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = [] if any(o.startswith("dataset.") for o in overrides) else ["--data-dir", str(glyphs_root)]
    line = _one_line_error(capsys, "train", "--run-dir", str(user_folder / "run"), *data, "--no-progress", *overrides)
    assert re.search(message, line), line


def test_a_run_whose_target_is_gone_is_one_line(
    user_folder: Path, glyphs_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = user_folder / "run"
    config = _config(user_folder, extends="protonet-glyphs-5w1s", model={"target": "mynets:encoder"})
    argv = ["train", "--config", str(config), "--run-dir", str(run), "--data-dir", str(glyphs_root), "--no-progress"]
    assert main(argv) == 0
    (user_folder / "mynets.py").unlink()
    sys.modules.pop("mynets")  # a new process: the module is imported afresh, and is not there
    support, query = glyph_folders(glyphs_root, user_folder / "files")
    for argv in (["eval", str(run)], ["predict", str(run), "--support", str(support), "--query", str(query)]):
        line = _one_line_error(capsys, *argv)
        assert f"cannot rebuild the model of {run / 'best.pt'}: model.target 'mynets:encoder': there is no" in line


def test_the_console_script_imports_from_the_current_folder(user_folder: Path, glyphs_root: Path) -> None:
    """``fastadapt`` (unlike ``python -m``) does not put the current folder on sys.path itself: the target still imports
    from there, and from another folder it is one line naming the folder."""
    script = Path(sys.executable).with_name("fastadapt")
    if not script.is_file():
        pytest.skip(f"no console script beside {sys.executable}")
    config = _config(user_folder, extends="protonet-glyphs-5w1s", model={"target": "mynets:encoder"})
    train = [str(script), "train", "--config", config.name, "--run-dir", "run", "--data-dir", str(glyphs_root)]
    done = subprocess.run(train, cwd=user_folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    evaluate = [str(script), "eval", str(user_folder / "run")]
    elsewhere = subprocess.run(evaluate, cwd=glyphs_root, capture_output=True, text=True, timeout=300)
    assert elsewhere.returncode == 2 and elsewhere.stderr.count("\n") == 1
    assert f"run fastadapt in the folder that holds it (now {glyphs_root})" in elsewhere.stderr


OWN = ["dataset.target=mydata:features", "model.target=mynets:mlp"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.name=custom"], "model.name=custom needs model.target: your factory, as module:function"),
        (["model.name=conv4", "model.target=mynets:encoder"], "model.target does not apply to model.name=conv4"),
        (["dataset.target=mydata:features"], "your own dataset.target needs your own model.target"),
        ([*OWN, "train.augment=crop_flip"], "train.augment transforms images of the built-in datasets, not"),
        ([*OWN, "algorithm.name=siamese", "algorithm.distortions=true"], "algorithm.distortions transforms images"),
        ([*OWN, "dataset.rotations=true"], "dataset.rotations does not apply to dataset.name=custom"),
        ([*OWN, "dataset.kwargs={split: val}"], "dataset.kwargs cannot set split"),
        ([*OWN, "model.kwargs=[6, 5]"], "model.kwargs must be dict, got [6, 5]"),
        ([*OWN, "model.kwargs={6: 5}"], "model.kwargs must map argument names to values"),
    ],
)
def test_target_rules_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config("protonet-glyphs-5w1s", overrides)


def test_a_target_replaces_the_inherited_section_and_old_configs_are_unchanged(tmp_path: Path) -> None:
    builtin = build_config("protonet-glyphs-5w1s").to_dict()
    conv4 = {"name", "hidden", "pool", "channels_last", "init", "bn_eps", "bn_scale", "readout", "padding",
             "pool_padding", "block_order", "unpadded_blocks"}
    assert set(builtin["model"]) == conv4 and "target" not in builtin["dataset"]
    targets = ["model.target=mynets:encoder", "dataset.target=mydata:features"]
    own = build_config("protonet-glyphs-5w1s", targets).to_dict()
    assert own["model"] == {"name": "custom", "target": "mynets:encoder", "kwargs": {}}
    assert own["dataset"] == {"name": "custom", "target": "mydata:features", "kwargs": {}}
    assert resolve(own).to_dict() == own  # a run's config.yaml reloads as is
    mine = "extends: protonet-glyphs-5w1s\nmodel: {target: mynets:encoder, kwargs: {hidden: 8}}\n"
    (tmp_path / "mine.yaml").write_text(mine)
    back = build_config(None, ["model.name=resnet12"], config_file=tmp_path / "mine.yaml")
    # back to a built-in: the target's keys go too
    assert back.to_dict()["model"] == {"name": "resnet12", "channels_last": False, "init": "torch"}
    kept = build_config(None, ["model.target=mynets:classifier"], config_file=tmp_path / "mine.yaml")
    assert kept.to_dict()["model"]["kwargs"] == {"hidden": 8}  # another target of your own keeps the kwargs


def test_import_target_finds_nested_attributes_and_the_current_folder(user_folder: Path) -> None:
    assert import_target("mynets:encoder")(hidden=4)[0].out_channels == 4
    assert import_target("fastadapt.nn:MLP.forward", "model.target").__qualname__ == "MLP.forward"
    (user_folder / "later.py").write_text("def f():\n    return 1\n")  # written after the folder was first read
    assert import_target("later:f")() == 1
    sys.modules.pop("later")


def test_train_help_lists_the_target_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    for key in ("model.target (default None)", "model.kwargs (default None)", "dataset.target (default None)",
                "dataset.kwargs (default None)", "model.target=MODULE:FUNCTION", "dataset.target=MODULE:FUNCTION"):
        assert key in out
