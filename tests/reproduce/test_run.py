"""``fastadapt reproduce`` end to end on tiny budgets: the report, its numbers' origin, the figures,
reuse and resumption of runs, and the command line."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml

import fastadapt.reproduce.figures as figures
import fastadapt.reproduce.measures as measures_module
import fastadapt.reproduce.registry as registry
from fastadapt import experiment
from fastadapt.cli import main
from fastadapt.config import build_config, merge, resolve
from fastadapt.errors import ConfigError
from fastadapt.experiment import adaptation_test, learner_with, load_learner
from fastadapt.reproduce import reproduce
from fastadapt.reproduce.registry import parse
from fastadapt.reproduce.run import row_config, train_or_reuse

TINY = ["train.steps=12", "train.val_every=6", "train.val_episodes=8", "test.episodes=16"]


def _sinusoid(seeds: int = 2, steps: int = 12, extra: tuple[str, ...] = ()) -> registry.Reproduction:
    entry = yaml.safe_load((Path(registry.__file__).parent / "papers.yaml").read_text())["maml-sinusoid"]
    entry["budgets"]["quick"] = {"overrides": [f"train.steps={steps}", *TINY[1:], *extra], "seeds": seeds}
    entry["rows"] = entry["rows"][:2]  # MAML and the pretrained baseline; the third trains MAML again
    return parse("maml-sinusoid", entry)


def _glyphs_family() -> registry.Reproduction:
    row = {"measures": [{"label": "5-way 1-shot", "paper": {"value": 0.99, "ci95": 0.01}}]}
    return parse("glyphs-family", {
        "title": "metric family on glyphs", "source": "none", "metric": "accuracy", "figures": ["embedding", "steps"],
        "rows": [
            {"label": "ProtoNet", "preset": "protonet-glyphs-5w1s", "overrides": ["model.hidden=8"], **row},
            {"label": "MAML", "preset": "maml-glyphs-5w1s", "overrides": ["model.hidden=8", "train.meta_batch=2"],
             "measures": [*row["measures"], {"label": "non-transductive", "set": {"test.statistics": "support"}}]},
        ],
        "budgets": {"quick": {"overrides": TINY, "seeds": 1}},
    })


def test_sinusoid_report_holds_every_seed_and_the_figures(tmp_path: Path) -> None:
    report = reproduce(_sinusoid(), "quick", tmp_path, progress=False, echo=lambda line: None)
    folder = tmp_path / "maml-sinusoid-quick"
    assert json.loads((folder / "reproduce.json").read_text()) == json.loads(json.dumps(report))
    assert [row["label"] for row in report["rows"]] == ["MAML (meta-trained with K=10)", "pretrained on all tasks"]
    assert report["rows"][0]["protocol"]["paper"]["split"].startswith("fresh tasks")  # the protocols travel along
    pretrained = report["rows"][1]
    labels = ["5-shot, 1 step", "5-shot, 5 steps", "5-shot, 10 steps", "10-shot, 1 step", "10-shot, 10 steps"]
    assert [m["label"] for m in pretrained["measures"]] == labels
    for row in report["rows"]:
        assert [r["seed"] for r in row["runs"]] == [0, 1] and all(r["train_steps"] == 12 for r in row["runs"])
        for m in row["measures"]:
            values = [s["value"] for s in m["ours"]["per_seed"]]
            assert m["ours"]["value"] == pytest.approx(sum(values) / 2) and m["ours"]["interval"] == "t over 2 seeds"
            assert (m["paper"] is None) == m["label"].startswith("10-shot")  # Table 2 is 5-shot
    # a measure is the run tested with its settings changed, here with the step picked on validation: recomputed
    seed1 = Path(pretrained["runs"][1]["run"])
    tuned = pretrained["runs"][1]["tuned"]
    assert tuned["keys"] == ["algorithm.inner_lr"] and len(tuned["validation"]) == len(tuned["values"]) == 6
    finite = [score for score in tuned["validation"] if score is not None]  # None: the step diverged
    assert tuned["chosen"] == tuned["values"][tuned["validation"].index(min(finite))]  # lowest MSE
    learner, config = load_learner(seed1)
    five_shot = resolve(merge(config.to_dict(), {"task": {"shots": 5}}))
    for value, score in zip(tuned["values"], tuned["validation"], strict=True):
        candidate, changed = learner_with(learner, five_shot, {"algorithm.inner_lr": value})
        again = experiment.test_learner(candidate, changed, inner_steps=10, split="val").mean
        assert again == pytest.approx(score) if score is not None else not math.isfinite(again)
    chosen, changed = learner_with(learner, config, {"algorithm.inner_lr": tuned["chosen"]})
    direct = experiment.test_learner(chosen, changed, episodes=16, inner_steps=10)  # 10 shots: the run's own task
    assert pretrained["measures"][4]["ours"]["per_seed"][1]["value"] == pytest.approx(direct.mean)
    assert report["rows"][0]["runs"][1]["tuned"] is None  # MAML's row tunes nothing: its step is trained
    measures = pretrained["measures"]
    assert measures[0]["ours"]["per_seed"][0]["value"] != measures[3]["ours"]["per_seed"][0]["value"]
    assert {Path(f).name for f in report["figures"]["files"]} == {"curves.png", "steps.png", "sinusoid.png"}
    panels = report["figures"]["sinusoid"]["panels"]
    assert [p["shots"] for p in panels] == [5, 10, 5, 10]
    steps = report["figures"]["steps"]
    assert [p["steps"] for p in steps[0]["points"]] == [0, 1, 2, 3, 5, 10]
    # the figure's point at 10 steps is the table's number for seed 0 (same episodes, same model)
    assert steps[3]["points"][-1]["value"] == pytest.approx(pretrained["measures"][4]["ours"]["per_seed"][0]["value"])


def test_a_second_call_reuses_finished_runs_and_resumes_a_broken_one(tmp_path: Path) -> None:
    first = reproduce(_sinusoid(seeds=1), "quick", tmp_path, progress=False, echo=lambda line: None)
    folder = tmp_path / "maml-sinusoid-quick"
    kept = folder / "maml-meta-trained-with-k-10-seed0" / "result.json"
    stamp = kept.stat().st_mtime_ns
    (folder / "pretrained-on-all-tasks-seed0" / "result.json").unlink()  # as if killed during its final test
    second = reproduce(_sinusoid(seeds=1), "quick", tmp_path, progress=False, echo=lambda line: None)
    assert kept.stat().st_mtime_ns == stamp
    assert (folder / "pretrained-on-all-tasks-seed0" / "result.json").is_file()
    for a, b in zip(first["rows"], second["rows"], strict=True):
        assert [m["ours"]["value"] for m in a["measures"]] == pytest.approx([m["ours"]["value"] for m in b["measures"]])
    with pytest.raises(ConfigError, match="maml-sinusoid has no full budget; it has quick"):
        papers = yaml.safe_load((Path(registry.__file__).parent / "papers.yaml").read_text())
        sinusoid = parse("maml-sinusoid", {**papers["maml-sinusoid"], "budgets": {"quick": {"seeds": 1}}})
        reproduce(sinusoid, "full", tmp_path)
    with pytest.raises(ConfigError, match="holds a run with another config"):
        reproduce(_sinusoid(seeds=1, steps=13), "quick", tmp_path, progress=False, echo=lambda line: None)
    stamp = kept.stat().st_mtime_ns
    reworded = reproduce(_sinusoid(seeds=1, extra=("description=reworded",)), "quick", tmp_path, progress=False,
                         echo=lambda line: None)  # a preset described otherwise runs the same: reused as it is
    assert kept.stat().st_mtime_ns == stamp
    assert [m["ours"]["value"] for m in reworded["rows"][0]["measures"]] == pytest.approx(
        [m["ours"]["value"] for m in second["rows"][0]["measures"]])


def test_a_second_call_reuses_the_measures_its_runs_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The measures a run's own test does not answer (other shots, a tuned step) are kept in its folder, and so are
    the steps figure's points: running the reproduction again tests nothing for the table or the figure."""
    first = reproduce(_sinusoid(seeds=1), "quick", tmp_path, progress=False, echo=lambda line: None)
    kept = tmp_path / "maml-sinusoid-quick" / "pretrained-on-all-tasks-seed0" / "measures.json"
    before = (kept.read_text(), kept.stat().st_mtime_ns)

    def tested_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("a kept measure was tested again")

    monkeypatch.setattr(measures_module, "test_learner", tested_again)
    monkeypatch.setattr(measures_module, "adaptation_test", tested_again)
    second = reproduce(_sinusoid(seeds=1), "quick", tmp_path, progress=False, echo=lambda line: None)
    assert second["figures"]["steps"] == first["figures"]["steps"]
    for a, b in zip(first["rows"], second["rows"], strict=True):
        unmarked = [{**m["ours"], "per_seed": [{k: v for k, v in seed.items() if k != "kept"}
                                               for seed in m["ours"]["per_seed"]]} for m in b["measures"]]
        assert [m["ours"] for m in a["measures"]] == unmarked
        assert [r["tuned"] for r in a["runs"]] == [r["tuned"] for r in b["runs"]]
        # every measure here is one the run's own test does not answer: taken by the first call, reused by the second
        assert not any("kept" in s for m in a["measures"] for s in m["ours"]["per_seed"])
        assert all(s["kept"] is True for m in b["measures"] for s in m["ours"]["per_seed"])
    assert (kept.read_text(), kept.stat().st_mtime_ns) == before  # read, not taken and written again


def test_an_unfinished_run_continues_under_a_time_budget_given_since(tmp_path: Path) -> None:
    reproduce(_sinusoid(seeds=1), "quick", tmp_path, progress=False, echo=lambda line: None)
    folder = tmp_path / "maml-sinusoid-quick"
    runs = [folder / "maml-meta-trained-with-k-10-seed0", folder / "pretrained-on-all-tasks-seed0"]
    runs[0].joinpath("result.json").unlink()  # unfinished: it continues under the budget
    with pytest.raises(ConfigError, match="settings changed since: train.max_minutes"):  # finished: not reused
        reproduce(_sinusoid(seeds=1, extra=("train.max_minutes=60",)), "quick", tmp_path, progress=False,
                  echo=lambda line: None)
    assert yaml.safe_load(runs[0].joinpath("config.yaml").read_text())["train"]["max_minutes"] == 60
    runs[1].joinpath("result.json").unlink()
    report = reproduce(_sinusoid(seeds=1, extra=("train.max_minutes=60",)), "quick", tmp_path, progress=False,
                       echo=lambda line: None)
    assert all(yaml.safe_load(run.joinpath("config.yaml").read_text())["train"]["max_minutes"] == 60 for run in runs)
    assert [row["runs"][0]["train_steps"] for row in report["rows"]] == [12, 12]
    with pytest.raises(ConfigError, match="settings changed since: train.steps"):  # what a step computes: refused
        reproduce(_sinusoid(seeds=1, steps=13, extra=("train.max_minutes=60",)), "quick", tmp_path,
                  progress=False, echo=lambda line: None)


def test_a_finished_run_is_tested_again_when_only_how_it_is_tested_changed(tmp_path: Path) -> None:
    # from PyTorch's initialization these 12 updates validate best before the last (from the MAML code's, at it)
    best = reproduce(_sinusoid(seeds=1, extra=("test.checkpoint=best", "model.init=torch")), "quick", tmp_path,
                     progress=False, echo=lambda line: None)
    folder = tmp_path / "maml-sinusoid-quick"
    maml, pretrained = folder / "maml-meta-trained-with-k-10-seed0", folder / "pretrained-on-all-tasks-seed0"
    stamp = (maml / "last.pt").stat().st_mtime_ns
    (pretrained / "result.json").unlink()  # unfinished: it continues under the new test settings
    last = reproduce(_sinusoid(seeds=1, extra=("test.checkpoint=last", "model.init=torch")), "quick", tmp_path,
                     progress=False, echo=lambda line: None)
    assert (maml / "last.pt").stat().st_mtime_ns == stamp  # tested again, not trained again
    for run in (maml, pretrained):  # the folders say how they were tested
        assert yaml.safe_load((run / "config.yaml").read_text())["test"]["checkpoint"] == "last"
        assert json.loads((run / "result.json").read_text())["tested_step"] == 12
    before, after = best["rows"][0]["runs"][0], last["rows"][0]["runs"][0]
    assert before["best_step"] != 12 and before["tested_step"] == before["best_step"] and after["tested_step"] == 12
    learner, config = load_learner(maml / "last.pt")  # the reference: the last state, tested directly
    folder_learner = load_learner(maml)[0].state_dict()  # the folder now stands for its last state
    assert all(torch.equal(value, folder_learner[name]) for name, value in learner.state_dict().items())
    five_shot = resolve(merge(config.to_dict(), {"task": {"shots": 5}}))
    for k, steps in enumerate((1, 5, 10)):
        direct = experiment.test_learner(learner, five_shot, inner_steps=steps).mean
        assert last["rows"][0]["measures"][k]["ours"]["value"] == pytest.approx(direct)
        assert best["rows"][0]["measures"][k]["ours"]["value"] != pytest.approx(direct)


def test_metric_rows_get_an_embedding_figure_and_gradient_rows_a_steps_figure(
    glyphs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTADAPT_DATA", str(glyphs_root))
    report = reproduce(_glyphs_family(), "quick", tmp_path, progress=False, echo=lambda line: None)
    assert [e["label"] for e in report["figures"]["embedding"]] == ["ProtoNet"]  # MAML has no encoder to project
    lines = report["figures"]["steps"]
    assert [line["label"] for line in lines] == ["MAML, 5-way 1-shot", "MAML, 5-way 1-shot, test.statistics=support"]
    for line, measure in zip(lines, report["rows"][1]["measures"], strict=True):  # at the test's 3 steps: the table's
        assert [p["value"] for p in line["points"] if p["steps"] == 3] == [pytest.approx(measure["ours"]["value"])]
    for row in report["rows"]:
        m = row["measures"][0]
        result = json.loads((Path(row["runs"][0]["run"]) / "result.json").read_text())
        assert m["ours"]["value"] == result["test"]["accuracy"] and m["ours"]["ci95"] == result["test"]["ci95"]
        assert m["gap"] == pytest.approx(m["ours"]["value"] - 0.99)
        assert m["overlap"] == (m["ours"]["value"] + m["ours"]["ci95"] >= 0.98)
    assert (tmp_path / "glyphs-family-quick" / "embedding.png").stat().st_size > 10_000
    # the steps figure tests at most FIGURE_EPISODES tasks, the first of the test's: capped, the same values there
    maml = _glyphs_family().rows[1]
    run = Path(report["rows"][1]["runs"][0]["run"])
    learner, config = load_learner(run)
    episodes = config.test.episodes
    monkeypatch.setattr(figures, "FIGURE_EPISODES", episodes - 1)
    capped = figures.steps_figure([(maml, 0, run, learner, config)], "accuracy", tmp_path / "capped.png")
    assert all(p["episodes"] == episodes - 1 for p in capped[0]["points"])
    first = experiment.test_learner(learner, config, episodes=episodes - 1, inner_steps=3).mean
    assert [p["value"] for p in capped[0]["points"] if p["steps"] == 3] == [pytest.approx(first)]


def test_an_unfinished_run_resumes_reading_its_data_where_this_machine_has_it(
    glyphs_root: Path, tmp_path: Path
) -> None:
    config = build_config("protonet-glyphs-5w1s", [f"dataset.data_dir={glyphs_root}", "model.hidden=8", *TINY])
    run = tmp_path / "run"
    experiment.run_experiment(config, run, progress=False)
    (run / "result.json").unlink()  # as if stopped before its test, then carried to a machine with the data elsewhere
    stored = yaml.safe_load((run / "config.yaml").read_text())
    stored["dataset"]["data_dir"] = str(tmp_path / "where-the-data-was")
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    result = train_or_reuse(config, run, progress=False, data_dir=str(glyphs_root))
    assert result["test"]["episodes"] == 16 and not (tmp_path / "where-the-data-was").exists()


def test_data_dir_and_download_apply_to_the_rows_that_read_files(tmp_path: Path) -> None:
    sinusoid = row_config(_sinusoid(), 0, "quick", 0, str(tmp_path), download=True)
    assert sinusoid == row_config(_sinusoid(), 0, "quick", 0, None, download=False)  # generated tasks: nothing to read
    glyphs = row_config(_glyphs_family(), 0, "quick", 0, str(tmp_path), download=True)
    assert glyphs.dataset.data_dir == str(tmp_path) and not hasattr(glyphs.dataset, "download")  # embedded
    omniglot = row_config(registry.get("maml-omniglot-5w1s"), 0, "full", 0, str(tmp_path), download=True)
    assert omniglot.dataset.data_dir == str(tmp_path) and omniglot.dataset.download


def test_the_command_prints_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(registry, "reproductions", lambda: {"maml-sinusoid": _sinusoid(seeds=1)})
    assert main(["reproduce", "maml-sinusoid", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ours (95% CI)" in out and "paper (95% CI)" in out
    assert re.search(r"pretrained on all tasks +10-shot, 10 steps +\d", out)
    assert "reproduce.json" in out
    assert main(["reproduce", "nope", "--out", str(tmp_path)]) == 2
    assert "no reproduction named 'nope'" in capsys.readouterr().err
    assert main(["reproduce", "--list"]) == 0
    assert capsys.readouterr().out.startswith("maml-sinusoid")


def test_rl_measures_read_the_runs_adaptation_curve(tmp_path: Path) -> None:
    entry = yaml.safe_load((Path(registry.__file__).parent / "papers.yaml").read_text())["maml-rl-nav2d"]
    tiny = ["train.steps=2", "train.val_every=1", "train.val_episodes=2", "test.episodes=3", "algorithm.trajectories=3",
            "dataset.horizon=8", "train.meta_batch=2", "model.layers=[8]"]
    entry["budgets"]["quick"] = {"overrides": tiny, "seeds": 1}
    report = reproduce(parse("maml-rl-nav2d", entry), "quick", tmp_path, progress=False, echo=lambda line: None)
    maml, pretrained = report["rows"]
    curve = json.loads((Path(maml["runs"][0]["run"]) / "result.json").read_text())["adaptation"]
    assert [m["label"] for m in maml["measures"]] == ["0 steps", "1 step", "2 steps", "3 steps"]
    assert [m["ours"]["value"] for m in maml["measures"]] == [curve[k]["return"] for k in (0, 1, 2, 3)]
    # the pretrained policy's step is picked on validation tasks (highest return after 3 steps), then tested
    tuned = pretrained["runs"][0]["tuned"]
    best = max(score for score in tuned["validation"] if score is not None)
    assert tuned["chosen"] == tuned["values"][tuned["validation"].index(best)]
    learner, config = load_learner(pretrained["runs"][0]["run"])
    steps = dict.fromkeys(("algorithm.inner_lr", "algorithm.later_inner_lr"), tuned["chosen"])
    chosen, changed = learner_with(learner, config, steps)
    assert changed.algorithm.later_inner_lr == tuned["chosen"]
    direct = [r.mean for r in adaptation_test(chosen, changed, steps=3)]
    assert [m["ours"]["value"] for m in pretrained["measures"]] == pytest.approx(direct)
    assert {Path(f).name for f in report["figures"]["files"]} == {"curves.png", "adaptation.png"}
