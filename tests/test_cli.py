"""The fastadapt command: end to end on the embedded data, and one clear line for bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import glyph_folders, run_cli, run_records

from fastadapt.checkpoint import load_checkpoint
from fastadapt.cli import main

TINY = ["train.steps=30", "train.val_every=15", "train.val_episodes=40", "test.episodes=60", "--no-progress"]


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
    written = {p.name for p in trained_run.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "best.pt", "last.pt", "result.json"} <= written


def test_eval_reproduces_the_test_result(
    trained_run: Path, glyphs_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "eval", str(trained_run), "--json", "--data-dir", str(glyphs_root))
    assert code == 0
    printed = json.loads(out)
    stored = json.loads((trained_run / "result.json").read_text())["test"]
    assert printed["accuracy"] == pytest.approx(stored["accuracy"]) and printed["ci95"] == pytest.approx(stored["ci95"])
    assert printed["episodes"] == 60
    code, out, _ = run_cli(
        capsys, "eval", str(trained_run / "last.pt"), "--episodes", "20", "--data-dir", str(glyphs_root)
    )
    assert code == 0 and "accuracy" in out and "20 episodes" in out


@pytest.mark.parametrize("statistics", ["support", "population"])
def test_eval_tests_again_under_another_batch_norm_protocol(
    trained_run: Path, glyphs_root: Path, capsys: pytest.CaptureFixture[str], statistics: str
) -> None:
    from fastadapt.evaluate import meta_test
    from fastadapt.experiment import build_tasks, load_learner

    code, out, err = run_cli(
        capsys, "eval", str(trained_run), "--json", "--data-dir", str(glyphs_root), "--statistics", statistics
    )
    assert code == 0, err
    printed = json.loads(out)
    learner, config = load_learner(trained_run, str(glyphs_root))
    assert config.test.statistics == "query"  # the run's own protocol, which --statistics replaces
    population = build_tasks(config, "train")  # population statistics: recorded on the training tasks
    tests = build_tasks(config, "test")
    expected = meta_test(learner, tests, episodes=60, statistics=statistics, population=population)
    assert printed["loss"] == pytest.approx(expected.loss) and printed["accuracy"] == pytest.approx(expected.mean)
    stored = json.loads((trained_run / "result.json").read_text())["test"]
    assert printed["loss"] != pytest.approx(stored["loss"])  # the queries were normalized otherwise


def test_resuming_a_finished_run_trains_no_further_and_tests_it_again(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "finished"
    shutil.copytree(trained_run, run)
    before, records = load_checkpoint(run / "last.pt"), run_records(run)
    stored = json.loads((run / "result.json").read_text())["test"]
    code, out, err = run_cli(capsys, "train", "--resume", str(run), "--no-progress")
    after = load_checkpoint(run / "last.pt")
    assert code == 0, err
    assert after["step"] == before["step"] == 30 and run_records(run) == records  # no update, no new record
    assert all(torch.equal(value, after["model"][name]) for name, value in before["model"].items())
    assert f"test accuracy: {100 * stored['accuracy']:.2f}% ± {100 * stored['ci95']:.2f}%" in out
    tested = json.loads((run / "result.json").read_text())["tested_step"]  # the best validation's (the default)
    assert f"the state at step {tested}" in out and tested == load_checkpoint(run / "best.pt")["step"]


def test_a_run_resumes_on_a_machine_where_its_data_lies_elsewhere(
    trained_run: Path, glyphs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "moved"
    shutil.copytree(trained_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["dataset"]["data_dir"] = str(tmp_path / "where-the-data-was")
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    for file in run.glob("*.pt"):  # the checkpoints name the old place too
        state = load_checkpoint(file)
        state["config"]["dataset"]["data_dir"] = config["dataset"]["data_dir"]
        torch.save(state, file)
    code, out, err = run_cli(capsys, "train", "--resume", str(run), "--no-progress", "--data-dir", str(glyphs_root))
    assert code == 0 and "test accuracy" in out, err
    assert not (tmp_path / "where-the-data-was").exists()  # the glyphs were read where given, not rendered again
    assert yaml.safe_load((run / "config.yaml").read_text())["dataset"]["data_dir"] == str(glyphs_root)
    code, _, err = run_cli(capsys, "eval", str(run), "--episodes", "5")  # best.pt, from before, names the old place
    assert code == 0 and not (tmp_path / "where-the-data-was").exists(), err


def test_presets_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "presets")
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
    argv: list[str], message: str, glyphs_root: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
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
    code, _, err = run_cli(
        capsys, "train", "--preset", "protonet-omniglot-5w1s", "--data-dir", str(tmp_path),
        "--run-dir", str(tmp_path / "run"),
    )
    assert code == 2 and "corrupt or truncated" in err and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from fastadapt.errors import ConfigError

    with pytest.raises(ConfigError):
        main(["--debug", "train", "--preset", "nope"])


def test_console_script_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "fastadapt", "presets"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "maml-sinusoid" in done.stdout


def test_predict_labels_query_files(
    trained_run: Path, glyphs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastadapt.predict import predict_run

    support, query = glyph_folders(glyphs_root, tmp_path)
    code, out, _ = run_cli(
        capsys, "predict", str(trained_run), "--support", str(support), "--query", str(query), "--json"
    )
    printed = json.loads(out)
    assert code == 0 and printed == json.loads(json.dumps(predict_run(trained_run, support, [query]).to_dict()))
    assert len(printed["predictions"]) == 30
    assert printed["preprocessing"] == {"image_size": 28, "channels": 1, "invert": True, "resample": "lanczos"}
    assert printed["accuracy"] > 0.4  # 5-way chance is 0.2; the tiny run scores well above it on unseen scripts
    one = next(query.glob("*/1.png"))
    code, out, _ = run_cli(
        capsys, "predict", str(trained_run / "best.pt"), "--support", str(support), "--query", str(one)
    )
    label, probability = out.strip().split("\t")[1:]
    assert code == 0 and out.startswith(str(one)) and label in printed["classes"] and 0.2 <= float(probability) <= 1


def test_predict_follows_a_run_tested_on_population_statistics(
    trained_run: Path, glyphs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recorded from the run's training data (read from --data-dir): each file's probability the same alone as
    among the others; where that data cannot be read, one line that says predict needs it."""
    from fastadapt import experiment
    from fastadapt.errors import DataError
    from fastadapt.predict import predict_run

    run = tmp_path / "population"
    shutil.copytree(trained_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["test"]["statistics"] = "population"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    support, query = glyph_folders(glyphs_root, tmp_path / "files")
    with monkeypatch.context() as patched:
        def missing(config: object) -> None:
            raise DataError("no glyphs at /nowhere")

        patched.setattr(experiment, "population_tasks", missing)
        code, _, err = run_cli(capsys, "predict", str(run), "--support", str(support), "--query", str(query))
    assert code == 2 and "is tested with batch norm on statistics recorded on its training data" in err
    assert "(--data-dir: where it is): no glyphs at /nowhere" in err and "\n" not in err.strip()
    rows = []
    for queries in (str(query), str(next(query.glob("*/1.png")))):
        code, out, err = run_cli(capsys, "predict", str(run), "--support", str(support), "--query", queries, "--json",
                                 "--data-dir", str(glyphs_root))
        assert code == 0, err
        rows.append({p["path"]: p["probability"] for p in json.loads(out)["predictions"]})
    alone = next(iter(rows[1]))
    assert rows[1][alone] == pytest.approx(rows[0][alone], abs=1e-6)
    transductive = [predict_run(trained_run, support, [files]).predictions for files in (query, Path(alone))]
    together = next(p.probability for p in transductive[0] if p.path == alone)
    assert transductive[1][0].probability != pytest.approx(together, abs=1e-6)  # the query batch's statistics: not


def test_predict_reuses_the_population_statistics_its_run_was_tested_with(
    glyphs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run's test (here of the model retrained on train + val, and its re-test) keeps its recorded moments in the
    folder: predict then needs no training data and labels as with moments recorded anew; for other adaptation
    steps, or from a torn file, it records them again."""
    import dataclasses

    from fastadapt import experiment
    from fastadapt.errors import DataError
    from fastadapt.predict import predict_run

    run = tmp_path / "population"
    trainval = ["test.statistics=population", "train.retrain_on_trainval=true", "train.patience=15"]
    assert main(["train", "--run-dir", str(run), "--data-dir", str(glyphs_root), *TINY, *trainval]) == 0
    kept = run / "population.pt"
    support, query = glyph_folders(glyphs_root, tmp_path / "files")

    def probabilities(inner_steps: int | None = None, data_dir: str | None = None) -> list[float]:
        report = predict_run(run, support, [query], inner_steps=inner_steps, data_dir=data_dir)
        return [p.probability for p in report.predictions]

    def missing(config: object) -> None:
        raise DataError("no glyphs at /nowhere")

    with monkeypatch.context() as patched:
        patched.setattr(experiment, "population_tasks", missing)
        without_data = probabilities()
        retrained = [p.probability for p in predict_run(run / "trainval" / "last.pt", support, [query]).predictions]
        assert retrained == without_data  # the file tested, found beside its run folder's kept moments
    experiment.retest_run(run, dataclasses.replace(experiment.read_config(run).test, episodes=8), str(glyphs_root))
    with monkeypatch.context() as patched:
        patched.setattr(experiment, "population_tasks", missing)
        assert probabilities() == without_data
        with pytest.raises(DataError, match="recorded on its training data"):
            probabilities(inner_steps=3)
        stored = kept.read_bytes()
        kept.write_bytes(stored[: len(stored) // 2])
        with pytest.raises(DataError, match="recorded on its training data"):
            probabilities()
    kept.unlink()
    assert without_data == pytest.approx(probabilities(data_dir=str(glyphs_root)), abs=1e-6)


def test_predict_refuses_bad_input_in_one_line(
    trained_run: Path, glyphs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    support, query = glyph_folders(glyphs_root, tmp_path)
    inverted = tmp_path / "inverted"
    for file in support.glob("*/*.png"):
        (inverted / file.parent.name).mkdir(parents=True, exist_ok=True)
        Image.eval(Image.open(file), lambda v: 255 - v).save(inverted / file.parent.name / file.name)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    cases = [
        (["--support", str(tmp_path / "nope"), "--query", str(query)], "no support folder at"),
        (["--support", str(tmp_path / "empty"), "--query", str(query)], "class folders hold no images"),
        (["--support", str(inverted), "--query", str(query)], "look inverted relative to its training data"),
        (["--support", str(support), "--query", str(tmp_path / "none.png")], "no query image or folder"),
    ]
    for argv, message in cases:
        code, _, err = run_cli(capsys, "predict", str(trained_run), *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    code, out, _ = run_cli(
        capsys, "predict", str(trained_run), "--support", str(inverted), "--query", str(query), "--force", "--json"
    )
    assert code == 0 and len(json.loads(out)["predictions"]) == 30


def test_predict_refuses_a_regression_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "sine"
    assert main([
        "train", "--preset", "maml-sinusoid", "--run-dir", str(run), "train.steps=2", "test.episodes=2", "--no-progress"
    ]) == 0
    capsys.readouterr()
    code, _, err = run_cli(capsys, "predict", str(run), "--support", str(tmp_path), "--query", str(tmp_path))
    assert code == 2 and "is a model of sinusoid data, not of images" in err


@pytest.mark.parametrize(
    "overrides",
    [
        ["algorithm.name=matchingnet"],
        ["algorithm.name=matchingnet", "algorithm.fce=true"],
        ["algorithm.name=relationnet", "train_task.ways=5"],
        ["algorithm.name=siamese", "algorithm.distortions=true"],
        ["algorithm.name=finetune", "train_task.ways=16", "train_task.queries=1"],
        ["algorithm.name=finetune", "algorithm.head=cosine", "algorithm.finetune_body=true",
         "algorithm.finetune_steps=3"],
        ["algorithm.name=protonet", "algorithm.distance=cosine", "algorithm.temperature=0.1",
         "algorithm.learn_temperature=true"],
        ["model.name=resnet12", "train.steps=2"],
    ],
    ids=[
        "matchingnet", "matchingnet-fce", "relationnet", "siamese", "finetune", "baselinepp-body", "protonet-cosine",
        "resnet12",
    ],
)
def test_every_method_trains_evaluates_and_predicts_from_the_cli(
    overrides: list[str], glyphs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    short = [
        "train.steps=6", "train.val_every=3", "train.val_episodes=4", "test.episodes=8", "train_task.ways=5",
        "--no-progress",
    ]
    code, _, err = run_cli(
        capsys, "train", "--run-dir", str(run), "--data-dir", str(glyphs_root), "--json", *short, *overrides
    )
    assert code == 0, err
    stored = json.loads((run / "result.json").read_text())["test"]
    code, out, _ = run_cli(capsys, "eval", str(run), "--json", "--data-dir", str(glyphs_root))
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(stored["accuracy"])
    support, query = glyph_folders(glyphs_root, tmp_path)
    code, out, err = run_cli(capsys, "predict", str(run), "--support", str(support), "--query", str(query), "--json")
    printed = json.loads(out)
    assert code == 0, err
    assert len(printed["predictions"]) == 30
    assert all(0.0 <= p["probability"] <= 1.0 and p["label"] in printed["classes"] for p in printed["predictions"])
