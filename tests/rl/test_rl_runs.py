"""MAML-RL through the config, the trainer and the command line (tiny sizes: a smoke run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import run_records

import fastadapt as fa
from fastadapt.checkpoint import load_checkpoint, save_checkpoint
from fastadapt.cli import main
from fastadapt.config import build_config
from fastadapt.errors import ConfigError
from fastadapt.rl import MAMLRL, GaussianPolicy, Navigation2D, RLTasks
from fastadapt.training.schedule import make_scheduler

TINY = ["train.steps=2", "train.val_every=1", "train.val_episodes=2", "test.episodes=3", "algorithm.trajectories=3",
        "dataset.horizon=8", "train.meta_batch=2", "model.layers=[8]", "--no-progress"]


def test_train_and_eval_an_rl_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--preset", "maml-rl-nav2d", "--run-dir", str(run), "--json", *TINY]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test"]["metric"] == "return" and [r["steps"] for r in result["adaptation"]] == [0, 1, 2, 3]
    assert all(r["return"] < 0 for r in result["adaptation"])  # minus distances
    assert result["test"]["return"] == pytest.approx(result["adaptation"][-1]["return"])  # the same tasks and draws
    records = run_records(run)
    assert {"return_before", "return_after", "kl"} <= set(records[0]) and any("val_return" in r for r in records)
    assert main(["eval", str(run), "--json", "--episodes", "3", "--inner-steps", "1"]) == 0
    curve = json.loads(capsys.readouterr().out)
    assert [r["steps"] for r in curve] == [0, 1] and curve[0]["episodes"] == 3
    assert curve[0]["gain"] == 0 and curve[1]["gain"] == pytest.approx(curve[1]["return"] - curve[0]["return"])
    assert main(["eval", str(run), "--episodes", "3", "--inner-steps", "1"]) == 0
    out = capsys.readouterr().out
    # evaluation rollouts are fixed by the tasks
    assert f"return after 1 adaptation steps: {curve[1]['return']:.2f}" in out
    assert main(["eval", str(run), "--json", "--episodes", "3", "--inner-steps", "1", "--baseline", str(run)]) == 0
    paired = json.loads(capsys.readouterr().out)
    # itself as the baseline: the same tasks and draws
    assert all(row["baseline"]["return"] == row["return"] for row in paired)
    code = main(["eval", str(run), "--statistics", "support"])
    assert code == 2 and "--statistics is a batch-norm protocol of few-shot classification, not of RL" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["algorithm.name=maml"], "the nav2d dataset is rl: use algorithm.name mamlrl"),
        (["model.name=conv4"], "the nav2d dataset needs model.name=policy"),
        (["algorithm.outer=sac"], "algorithm.outer must be one of"),
    ],
)
def test_rl_config_mistakes_are_named(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config("maml-rl-nav2d", overrides)


def test_ppo_and_first_order_variants_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for extra in (["algorithm.outer=ppo", "algorithm.ppo_epochs=2"], ["algorithm.first_order=true"]):
        run = tmp_path / extra[0].replace("=", "-")
        assert main(["train", "--preset", "maml-rl-nav2d", "--run-dir", str(run), "--json", *TINY, *extra]) == 0
        assert json.loads(capsys.readouterr().out)["train_steps"] == 2


def _can_render() -> bool:
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import gymnasium

        env = gymnasium.make("Reacher-v5", render_mode="rgb_array", width=32, height=32)
        env.reset(seed=0)
        ok = env.render() is not None
        env.close()
        return ok
    except Exception:  # no headless OpenGL on this machine
        return False


def test_a_mujoco_run_trains_and_renders_before_and_after(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mujoco")
    run = tmp_path / "cheetah"
    tiny = [t for t in TINY if not t.startswith("dataset.horizon")] + ["dataset.horizon=10", "test.inner_steps=1"]
    assert main(["train", "--preset", "maml-rl-cheetah-dir", "--run-dir", str(run), "--json", *tiny]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "halfcheetah_dir" and len(result["adaptation"]) == 2
    if not _can_render():
        pytest.skip("no headless OpenGL (MUJOCO_GL=egl) here")
    from PIL import Image

    assert main(["render", str(run), "--task", "-1", "--out", str(tmp_path / "cheetah.gif")]) == 0
    assert "backward" in capsys.readouterr().out
    with Image.open(tmp_path / "cheetah.gif") as gif:
        assert gif.n_frames >= 3 and gif.width == 2 * 256


def test_render_refuses_other_runs_and_bad_tasks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "nav"
    assert main(["train", "--preset", "maml-rl-nav2d", "--run-dir", str(run), "--json", *TINY]) == 0
    capsys.readouterr()
    assert main(["render", str(run), "--task", "0.1", "--out", str(tmp_path / "x.png")]) == 2
    assert "nav2d tasks have 2 numbers, --task gave 1" in capsys.readouterr().err
    assert main(["render", str(run), "--task", "0.2,-0.3", "--out", str(tmp_path / "paths.png")]) == 0
    assert (tmp_path / "paths.png").stat().st_size > 1000


def _fresh_learner() -> tuple[MAMLRL, RLTasks]:
    torch.manual_seed(0)
    return MAMLRL(GaussianPolicy(2, 2, hidden=(8,)), Navigation2D(), trajectories=3, horizon=8), RLTasks(Navigation2D())


def _train_tiny(run_dir: Path, steps: int, resume: bool = False) -> MAMLRL:
    learner, tasks = _fresh_learner()
    fa.meta_train(learner, tasks, steps=steps, meta_batch=2, run_dir=run_dir, resume=resume, val_every=10,
                  progress=False)
    return learner


def _assert_same(a: MAMLRL, b: MAMLRL) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_a_resumed_rl_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    """The rollouts draw from torch's generator, which checkpoints keep: resuming replays the same
    episodes and TRPO steps. (Rewritten: RL runs take no optimizer any more.)"""
    whole = _train_tiny(tmp_path / "whole", 3)
    _train_tiny(tmp_path / "part", 2)
    torch.manual_seed(123)  # a new process would start from another state
    _assert_same(whole, _train_tiny(tmp_path / "part", 3, resume=True))
    saved = load_checkpoint(tmp_path / "part" / "last.pt")
    assert saved["optimizer"] is None and saved["scheduler"] is None


def test_an_old_rl_checkpoint_with_its_sgd_state_still_resumes_exactly(tmp_path: Path) -> None:
    """Earlier versions applied the TRPO step through SGD(lr=1) and stored its state and its schedule's: a resumed
    run ignores them and continues as the uninterrupted run does."""
    whole = _train_tiny(tmp_path / "whole", 3)
    _train_tiny(tmp_path / "part", 2)
    new = load_checkpoint(tmp_path / "part" / "last.pt")
    learner, _ = _fresh_learner()
    sgd = torch.optim.SGD(learner.parameters(), lr=1.0)
    schedule = make_scheduler(sgd, "constant", 3)
    old = {key: new[key] for key in ("algorithm", "config", "metadata", "model", "sampler", "rng", "step", "elapsed_s",
                                     "best")}
    save_checkpoint(tmp_path / "part" / "last.pt", **{**old, "optimizer": sgd.state_dict(),
                                                      "scheduler": schedule.state_dict()})
    torch.manual_seed(123)
    _assert_same(whole, _train_tiny(tmp_path / "part", 3, resume=True))


def test_an_old_rl_run_folder_still_evaluates_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run folder as earlier versions wrote it (train.optimizer=sgd, lr=1, and that optimizer's and schedule's state
    in its checkpoints) evaluates as before, and resuming it (finished) trains nothing and tests the same."""
    run = tmp_path / "run"
    assert main(["train", "--preset", "maml-rl-nav2d", "--run-dir", str(run), "--json", *TINY, "train.optimizer=sgd",
                 "train.lr=1.0"]) == 0
    trained = json.loads(capsys.readouterr().out)
    eval_args = ["eval", str(run), "--json", "--episodes", "3", "--inner-steps", "1"]
    assert main(eval_args) == 0
    before = json.loads(capsys.readouterr().out)
    for name in ("last.pt", "best.pt"):
        saved = load_checkpoint(run / name)
        sgd = torch.optim.SGD([t.clone().requires_grad_() for t in saved["model"].values()], lr=1.0)
        kept = {key: saved[key] for key in ("algorithm", "config", "metadata", "model", "sampler", "rng", "step",
                                            "elapsed_s", "best")}
        save_checkpoint(run / name, **kept, optimizer=sgd.state_dict(),
                        scheduler=make_scheduler(sgd, "constant", 2).state_dict())
    assert main(eval_args) == 0
    assert json.loads(capsys.readouterr().out) == before
    assert main(["train", "--resume", str(run), "--json", "--no-progress"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["train_steps"] == 2 and resumed["test"] == trained["test"]


def test_the_trainer_applies_the_outer_step_without_an_optimizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One meta-update of meta_train moves the parameters by exactly TRPO's step; no gradient is left, and the
    train record has no learning rate."""
    steps: list[torch.Tensor] = []
    original = MAMLRL._trpo

    def recorded(self: MAMLRL, *args: object) -> tuple[torch.Tensor, float, float]:
        step, loss, kl = original(self, *args)
        steps.append(step)
        return step, loss, kl

    monkeypatch.setattr(MAMLRL, "_trpo", recorded)
    learner, tasks = _fresh_learner()
    before = torch.nn.utils.parameters_to_vector(learner.parameters()).detach().clone()
    fa.meta_train(learner, tasks, steps=1, meta_batch=2, run_dir=tmp_path, progress=False, restore_best=False)
    assert torch.equal(torch.nn.utils.parameters_to_vector(learner.parameters()).detach(), before + steps[0])
    assert steps[0].abs().sum() > 0 and all(p.grad is None for p in learner.parameters())
    assert "lr" not in run_records(tmp_path)[0]
    with pytest.raises(TypeError, match="mamlrl makes its own outer step: meta_train takes no optimizer"):
        fa.meta_train(learner, tasks, 1, optimizer=torch.optim.SGD(learner.parameters(), lr=1.0), progress=False)


def test_zero_test_steps_in_the_config_means_no_adaptation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = str(tmp_path / "run")
    assert main(["train", "--preset", "maml-rl-nav2d", "--run-dir", run, "--json", *TINY, "test.inner_steps=0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["steps"] for r in result["adaptation"]] == [0]
