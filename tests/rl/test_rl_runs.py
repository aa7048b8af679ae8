"""MAML-RL through the config, the trainer and the command line (tiny sizes: a smoke run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_records

from fastadapt.cli import main
from fastadapt.config import build_config
from fastadapt.errors import ConfigError

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
    assert f"return after 1 adaptation steps: {curve[1]['return']:.2f}" in out  # evaluation rollouts are fixed by the tasks
    assert main(["eval", str(run), "--json", "--episodes", "3", "--inner-steps", "1", "--baseline", str(run)]) == 0
    paired = json.loads(capsys.readouterr().out)
    assert all(row["baseline"]["return"] == row["return"] for row in paired)  # itself as the baseline: the same tasks and draws


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.optimizer=adam"], "mamlrl computes its own TRPO/PPO step"),
        (["algorithm.name=maml"], "reinforcement learning goes together"),
        (["model.name=conv4"], "reinforcement learning goes together"),
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


def test_a_resumed_rl_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    """The rollouts draw from torch's generator, which checkpoints keep: resuming replays the same
    episodes and TRPO steps."""
    import torch

    import fastadapt as fa
    from fastadapt.rl import MAMLRL, GaussianPolicy, Navigation2D, RLTasks

    def fresh() -> tuple[MAMLRL, torch.optim.Optimizer, RLTasks]:
        torch.manual_seed(0)
        learner = MAMLRL(GaussianPolicy(2, 2, hidden=(8,)), Navigation2D(), trajectories=3, horizon=8)
        return learner, torch.optim.SGD(learner.parameters(), lr=1.0), RLTasks(Navigation2D(), seed=0)

    whole, optimizer, tasks = fresh()
    fa.meta_train(whole, tasks, steps=3, meta_batch=2, optimizer=optimizer, run_dir=tmp_path / "whole", val_every=10, progress=False)
    part, optimizer, tasks = fresh()
    fa.meta_train(part, tasks, steps=2, meta_batch=2, optimizer=optimizer, run_dir=tmp_path / "part", val_every=10, progress=False)
    torch.manual_seed(123)  # a new process would start from another state
    resumed, optimizer, tasks = fresh()
    fa.meta_train(resumed, tasks, steps=3, meta_batch=2, optimizer=optimizer, run_dir=tmp_path / "part", resume=True, val_every=10,
                  progress=False)
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_zero_test_steps_in_the_config_means_no_adaptation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--preset", "maml-rl-nav2d", "--run-dir", str(tmp_path / "run"), "--json", *TINY, "test.inner_steps=0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["steps"] for r in result["adaptation"]] == [0]
