"""The presets that claim a paper's settings hold them: each value below was checked against the paper or
its official code (issue 15); a preset that drifts from one fails here, not silently in a reproduction."""

from __future__ import annotations

from typing import Any

import pytest

from fastadapt.config import build_config, preset_names
from fastadapt.config.loading import flatten

OMNIGLOT_WAYS_SHOTS = ("5w1s", "5w5s", "20w1s", "20w5s")

REPTILE_OMNIGLOT = {
    "dataset.scheme": "random", "dataset.split_sizes": [1200, 0, 423], "dataset.rotation_splits": ["train"],
    "algorithm.inner_optimizer": "adam", "task.queries": 1, "test.episodes": 10000,
    "dataset.resample": "nearest", "dataset.invert": False,  # Pillow's resize of the 1-bit files, white page as 1
    "model.init": "glorot", "model.bn_eps": 0.001,  # tf.layers' defaults
    "model.padding": "tensorflow", "model.readout": "flatten",  # its strided network flattens the 2x2x64 map
}
MAML_OMNIGLOT = {"dataset.scheme": "random", "dataset.split_sizes": [1100, 100, 423], "dataset.split_seed": 1,
                 "dataset.task_rotations": True, "test.checkpoint": "last",  # the MAML code tests its last state
                 "dataset.resample": "nearest", "dataset.invert": True, "model.init": "maml", "model.bn_eps": 0.001,
                 "model.padding": "tensorflow", "model.readout": "auto", "model.bn_scale": False,
                 # the code's step on its loss (summed over the support set, divided by the shots) times the ways
                 "algorithm.inner_lr": 2.0, "algorithm.adapt_batch_norm": False}
MAMLPP = {"train.meta_batch": 8, "model.pool": "max", "algorithm.multi_step_loss": True,
          "algorithm.multi_step_loss_steps": 5000, "algorithm.first_order": False, "algorithm.first_order_until": 0,
          "algorithm.inner_steps": 5, "algorithm.per_step_lr": True, "algorithm.per_step_bn": True, "task.queries": 1,
          "train.val_every": 500, "train.val_episodes": 600, "train.keep_best": 5, "test.ensemble": 5,
          "test.checkpoint": "best", "dataset.resample": "nearest", "dataset.invert": False, "model.init": "glorot",
          "model.bn_eps": 1e-5, "model.padding": "torch", "model.bn_scale": True, "algorithm.inner_lr": 0.1,
          "algorithm.adapt_batch_norm": True}
CHEN_FITTING = {"algorithm.finetune_lr": 0.01, "algorithm.finetune_momentum": 0.9,
                "algorithm.finetune_dampening": 0.9, "algorithm.finetune_weight_decay": 0.001,
                "algorithm.finetune_batch": 4, "algorithm.finetune_epochs": 100}
MAML_RL = {"model.activation": "relu", "model.layers": [100, 100], "algorithm.inner_lr": 0.1,
           "algorithm.later_inner_lr": 0.05, "algorithm.inner_steps": 1}

SETTINGS: list[tuple[str, dict[str, Any]]] = [
    *[(f"reptile-omniglot-{ws}", REPTILE_OMNIGLOT) for ws in OMNIGLOT_WAYS_SHOTS],
    ("reptile-omniglot-5w1s", {"algorithm.inner_lr": 0.001, "algorithm.inner_batch": 10, "algorithm.inner_steps": 5,
                               "train.steps": 100000}),
    ("reptile-omniglot-20w1s", {"algorithm.inner_lr": 0.0005, "algorithm.inner_batch": 20,
                                "algorithm.inner_steps": 10, "train.steps": 200000}),
    *[(f"maml-omniglot-{ws}", MAML_OMNIGLOT) for ws in OMNIGLOT_WAYS_SHOTS],
    *[(f"maml-omniglot-{ws}", {"task.queries": int(ws[-2])}) for ws in OMNIGLOT_WAYS_SHOTS],  # queries = shots
    *[(f"mamlpp-omniglot-{ws}", MAMLPP) for ws in OMNIGLOT_WAYS_SHOTS],
    *[(f"metasgd-{data}-{ws}", {"algorithm.inner_steps": 1, "algorithm.test_inner_steps": 1})
      for data, ws in [("omniglot", ws) for ws in OMNIGLOT_WAYS_SHOTS] + [("miniimagenet", "5w1s"),
                                                                            ("miniimagenet", "5w5s")]],
    *[(name, MAML_RL) for name in ("maml-rl-cheetah-vel", "maml-rl-cheetah-dir", "maml-rl-ant-dir")],
    # the MAML code's point-robot run (maml_trpo_point.py, test_maml_point.py): normalized actions, steps 0.5 / 0.25
    ("maml-rl-nav2d", {**MAML_RL, "algorithm.inner_lr": 0.5, "algorithm.later_inner_lr": 0.25,
                       "dataset.action_scale": 0.1, "train.steps": 100, "train.meta_batch": 20,
                       "algorithm.trajectories": 20, "algorithm.test_trajectories": 40, "algorithm.max_kl": 0.01,
                       "algorithm.outer": "trpo"}),
    ("maml-rl-ant-dir", {"algorithm.trajectories": 40}),
    # the code's ICML HalfCheetah forward/backward model (mlr0.02) and test script (the pretrained policy's step 0.2)
    ("maml-rl-cheetah-dir", {"algorithm.max_kl": 0.02, "train.meta_batch": 40, "algorithm.trajectories": 20}),
    ("pretrained-rl-cheetah-dir", {"algorithm.inner_steps": 0, "algorithm.inner_lr": 0.2,
                                   "algorithm.later_inner_lr": 0.1, "algorithm.max_kl": 0.02}),
    *[(name, {"test.checkpoint": "last"}) for name in ("maml-sinusoid", "pretrained-sinusoid", "maml-miniimagenet-5w1s",
                                                       "maml-miniimagenet-5w5s", "reptile-miniimagenet-5w1s")],
    *[(f"protonet-omniglot-{ws}", {"dataset.resample": "nearest", "dataset.invert": True})
      for ws in OMNIGLOT_WAYS_SHOTS],
    ("protonet-omniglot-5w1s", {"train.patience": 20000, "train.retrain_on_trainval": True, "train.select": "loss",
                                "test.statistics": "population",
                                "train_task.ways": 60, "train_task.queries": 5, "dataset.scheme": "vinyals"}),
    *[(name, {"model.init": "maml"}) for name in ("maml-sinusoid", "pretrained-sinusoid")],
    *[(f"{method}-miniimagenet-{ws}", {"model.init": "glorot", "model.bn_eps": 0.001})
      for method in ("maml", "reptile") for ws in ("5w1s", "5w5s")],
    *[(f"maml-miniimagenet-{ws}", {"model.bn_scale": False, "algorithm.inner_lr": 0.05}) for ws in ("5w1s", "5w5s")],
    *[(f"reptile-miniimagenet-{ws}", {"model.pool_padding": "same", "model.block_order": "conv-pool-norm-relu"})
      for ws in ("5w1s", "5w5s")],
    *[(f"relationnet-omniglot-{ws}", {"model.unpadded_blocks": 2, "model.init": "relationnet",
                                         "dataset.resample": "nearest", "train.grad_clip": 0.5})
      for ws in ("5w1s", "20w1s")],
    ("protonet-omniglot-5w1s", {"model.init": "torch"}),  # the PyTorch code's defaults, the same bounds as today's
    ("protonet-tieredimagenet-5w1s", {"train_task.ways": 5, "train_task.queries": 5, "train.steps": 200000,
                                      "train.lr_decay_every": 25000, "train.lr_decay": 0.5}),
    ("protonet-fc100-5w1s", {"train_task.ways": 5, "train_task.shots": 15, "train_task.queries": 6,
                             "train.meta_batch": 8}),
    ("protonet-cub-5w1s", {"task.queries": 15, "train_task.queries": 16}),
    ("baseline-cub-5w1s", {"task.queries": 15}),
    *[(name, CHEN_FITTING) for name in ("finetune-omniglot-5w1s", "finetune-omniglot-20w1s", "baselinepp-omniglot-5w1s",
                                        "baselinepp-omniglot-20w1s", "baseline-cub-5w1s")],
]


@pytest.mark.parametrize(("preset", "expected"), SETTINGS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(SETTINGS)])
def test_the_preset_holds_the_papers_settings(preset: str, expected: dict[str, Any]) -> None:
    assert preset in preset_names()
    resolved = flatten(build_config(preset, []).to_dict())
    assert {key: resolved.get(key) for key in expected} == expected


@pytest.mark.parametrize("preset", ["protonet-fc100-5w1s", "protonet-cub-5w1s",
                                    "baseline-cub-5w1s", "finetune-omniglot-5w1s", "baselinepp-omniglot-5w1s",
                                    "relationnet-omniglot-5w1s"])
def test_a_preset_that_is_not_the_papers_says_where(preset: str) -> None:
    description = build_config(preset, []).description
    assert "Not " in description and ("built" in description or "paper" in description or "Chen" in description)
