"""Pictures of a trained MAML-RL policy on one task, before and after adaptation: an animated GIF
of the MuJoCo scene side by side, or, for 2D navigation, a plot of the paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from fastadapt.errors import ConfigError
from fastadapt.nn.params import Params
from fastadapt.rl.families import MujocoFamily, Navigation2D
from fastadapt.rl.mamlrl import MAMLRL


def _episode_frames(
    learner: MAMLRL, family: MujocoFamily, params: Params, task: np.ndarray, every: int
) -> tuple[list[np.ndarray], float]:
    """Frames and return of one episode of ``family``'s ``task`` acting with the policy's mean action."""
    env = family.make(task, learner.horizon, render=True)
    try:
        obs, _ = env.reset(seed=0)
        frames, total = [env.render()], 0.0
        for t in range(learner.horizon):
            with torch.no_grad():
                out = learner.forward_with(params, torch.as_tensor(obs, dtype=torch.float64)[None])
            obs, reward, terminated, truncated, _ = env.step(out[0, : learner.policy.act_dim].double().numpy())
            total += float(reward)
            if t % every == 0:
                frames.append(env.render())
            if terminated or truncated:
                break
        return frames, total
    finally:
        env.close()


def _caption(frame: np.ndarray, text: str) -> Image.Image:
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, image.width, 16), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255))
    return image


def render(learner: MAMLRL, task: torch.Tensor, path: str | os.PathLike[str], steps: int = 1, every: int = 5) -> Path:
    """Adapt ``learner`` to ``task`` by ``steps`` policy-gradient steps (on sampled trajectories) and
    write the policy before and after: a GIF for MuJoCo families, a PNG plot for 2D navigation."""
    path = Path(path)
    adapted, _ = learner.adapt(task[None].to(torch.float64), steps, torch.Generator().manual_seed(0))
    before, after = learner.params(), adapted[0]
    family = learner.family
    words = family.describe(task)
    if isinstance(family, Navigation2D):
        return _plot_paths(learner, task, before, after, steps, path, words)
    if not isinstance(family, MujocoFamily):
        raise ConfigError(f"rendering is not available for the {family.name} family")
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering
    frames_before, return_before = _episode_frames(learner, family, before, task.numpy(), every)
    frames_after, return_after = _episode_frames(learner, family, after, task.numpy(), every)
    count = max(len(frames_before), len(frames_after))
    pictures = []
    for i in range(count):
        left = _caption(frames_before[min(i, len(frames_before) - 1)], f"before: return {return_before:.0f}")
        right = _caption(frames_after[min(i, len(frames_after) - 1)], f"after {steps} step: return {return_after:.0f}")
        joined = Image.new("RGB", (left.width + right.width, left.height + 16))
        joined.paste(left, (0, 16))
        joined.paste(right, (left.width, 16))
        ImageDraw.Draw(joined).text((4, 2), words, fill=(255, 255, 255))
        pictures.append(joined.convert("P", palette=Image.Palette.ADAPTIVE, colors=48))
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=60, loop=0, optimize=True)
    return path


def _plot_paths(
    learner: MAMLRL, task: torch.Tensor, before: Params, after: Params, steps: int, path: Path, words: str
) -> Path:
    """A PNG of five 2D-navigation paths before and after adaptation, the goal starred (a ``Figure``, no pyplot)."""
    figure = Figure(figsize=(4, 4), dpi=100)
    axis = figure.subplots()
    generator = torch.Generator().manual_seed(1)
    lines = ((before, "tab:gray", "before adaptation"), (after, "tab:blue", f"after {steps} step(s)"))
    for params, colour, label in lines:
        episodes = learner.collect(task[None].to(torch.float64), [params], generator)
        for b in range(min(5, episodes.obs.shape[1])):
            valid = episodes.mask[:, b] > 0
            xy = episodes.obs[valid, b].numpy()
            axis.plot(xy[:, 0], xy[:, 1], color=colour, alpha=0.7, label=label if b == 0 else None)
    axis.scatter([task[0]], [task[1]], marker="*", s=200, color="tab:red", label="goal", zorder=3)
    axis.scatter([0], [0], marker="o", color="black", zorder=3)
    axis.set(xlim=(-0.6, 0.6), ylim=(-0.6, 0.6), aspect="equal", title=words)
    axis.legend(loc="lower left", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight")
    return path
