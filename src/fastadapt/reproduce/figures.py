"""The figures of a reproduction, drawn from its trained models (the first seed of each row).

``steps.png``: the test metric against the number of adaptation steps (gradient-based rows);
``sinusoid.png``: the MAML paper's figure, one task's true function, support points and the
prediction before and after 1 and 10 steps; ``embedding.png``: for metric methods, one test task's
query and support embeddings and class means projected on their two principal components. Every
figure's numbers are returned, to be stored in ``reproduce.json`` beside the table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fastadapt.config import RunConfig, build_tasks, merge, resolve, unflatten
from fastadapt.errors import ConfigError
from fastadapt.evaluate import higher_is_better
from fastadapt.experiment import load_learner
from fastadapt.plots import plot_runs, save_figure
from fastadapt.regression import SinusoidTasks
from fastadapt.reproduce.kept import FIELDS
from fastadapt.reproduce.measures import measure
from fastadapt.reproduce.registry import FIGURES, Measure, Row
from fastadapt.tasks import TaskDistribution, ways_of

STEPS = (0, 1, 2, 3, 5, 10)
FIGURE_EPISODES = 1000  # the steps figure's tasks: the first of the test's, at most this many (10,000 are hours)
SINUSOID_STEPS = (0, 1, 10)
Trained = tuple[Row, int, Path, Any, RunConfig]


def _settings(row: Row) -> list[dict[str, Any]]:
    """The distinct test settings of a row's measures, the number of steps aside."""
    seen: list[dict[str, Any]] = []
    for item in row.measures:
        rest = {k: v for k, v in item.set.items() if k != "test.inner_steps"}
        if rest not in seen:
            seen.append(rest)
    return seen


def _label(row: Row, setting: dict[str, Any], tested: RunConfig) -> str:
    """The row and the task it was tested on; the test statistics where the setting names them."""
    task = tested.task
    statistics = f", test.statistics={setting['test.statistics']}" if "test.statistics" in setting else ""
    if tested.dataset.name == "sinusoid":
        return f"{row.label}, {task.shots}-shot{statistics}"
    return f"{row.label}, {task.ways}-way {task.shots}-shot{statistics}"


def steps_figure(trained: list[Trained], metric: str, path: Path, keep: bool = False) -> list[dict[str, Any]]:
    """Metric (95% CI) after 0, 1, 2, 3, 5 and 10 adaptation steps on the run's test episodes (the first
    ``FIGURE_EPISODES`` of them: Reptile's 10,000 tasks six times over would take longer than its training). Each
    point is a measure (``fastadapt.reproduce.measures.measure``): with ``keep``, kept in its run folder and read back
    on the next call, as the table's are."""
    lines: list[dict[str, Any]] = []
    for row, _, run_dir, learner, config in trained:
        if not hasattr(learner, "inner_steps") or config.algorithm.name == "mamlrl":
            continue
        for setting in _settings(row):
            tested = resolve(merge(config.to_dict(), unflatten(setting)))
            capped = {**setting, "test.episodes": min(tested.test.episodes, FIGURE_EPISODES)}
            points = [
                measure(learner, config, Measure(f"{k} steps", {**capped, "test.inner_steps": k}),
                        run_dir=run_dir if keep else None)
                for k in STEPS
            ]
            lines.append({
                "label": _label(row, setting, tested),
                "points": [{"steps": k, **{f: p[f] for f in FIELDS}}
                           for k, p in zip(STEPS, points, strict=True)],
            })
    if lines:
        draw_steps(lines, metric, path)
    return lines


def draw_steps(lines: list[dict[str, Any]], metric: str, path: Path) -> None:
    """The steps figure from its ``lines``: an error (MSE, a loss) on a log axis, where one diverging adaptation
    would flatten the others (an interval that reaches below zero runs off the bottom)."""
    scale = 100 if metric == "accuracy" else 1
    figure = Figure(figsize=(5.5, 3.8), dpi=100)
    axis = figure.subplots()
    for line in lines:
        axis.errorbar(
            [p["steps"] for p in line["points"]],
            [scale * p["value"] for p in line["points"]],
            yerr=[scale * p["ci95"] for p in line["points"]],
            marker="o",
            capsize=3,
            label=line["label"],
        )
    error = not higher_is_better(metric)
    if error:
        axis.set_yscale("log")
    axis.set(
        xlabel="adaptation steps at test",
        ylabel="test accuracy (%)" if metric == "accuracy" else f"test {metric}" + (" (log scale)" if error else ""),
        title=f"after k steps (95% CI, {lines[0]['points'][0]['episodes']} test tasks)",
        xticks=list(STEPS),
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    save_figure(figure, path)


def sinusoid_figure(trained: list[Trained], path: Path) -> dict[str, Any]:
    """One sinusoid (drawn from the first row's test seed) fitted by each row and shot count."""
    config = trained[0][4]
    dataset = build_tasks(config, "test")
    if not isinstance(dataset, SinusoidTasks):
        raise ConfigError("the sinusoid figure draws sinusoid regression runs only")
    generator = torch.Generator().manual_seed(config.test.seed)
    (a_low, a_high), (p_low, p_high) = dataset.amplitude, dataset.phase
    amplitude = a_low + (a_high - a_low) * torch.rand((), generator=generator).item()
    phase = p_low + (p_high - p_low) * torch.rand((), generator=generator).item()
    low, high = dataset.x_range
    most = max(int(s.get("task.shots", c.task.shots)) for r, _, _, _, c in trained for s in _settings(r))
    support_x = low + (high - low) * torch.rand((most, 1), generator=generator)
    grid = torch.linspace(low, high, 200)[:, None]
    truth = amplitude * torch.sin(grid - phase)
    panels: list[dict[str, Any]] = []
    for row, _, _, learner, config in trained:
        for setting in _settings(row):
            shots = setting.get("task.shots", config.task.shots)
            sx = support_x[:shots]
            sy = amplitude * torch.sin(sx - phase)
            curves = {}
            for k in SINUSOID_STEPS:
                predict = learner.adapt(sx, sy, steps=k)
                with torch.no_grad():
                    curves[k] = predict(grid).squeeze(1)
            mse = {k: torch.mean((c - truth.squeeze(1)) ** 2).item() for k, c in curves.items()}
            label = _label(row, setting, config)
            panels.append({"label": label, "shots": shots, "curves": curves, "mse": mse, "support": (sx, sy)})
    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(5 * columns, 3.4 * rows), dpi=90)
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis, panel in zip(axes.flat, panels, strict=False):  # the grid may have a spare cell, blanked below
        axis.plot(grid, truth, color="red", linewidth=2, label="ground truth")
        for k, style in zip(SINUSOID_STEPS, (":", "--", "-"), strict=True):
            axis.plot(
                grid,
                panel["curves"][k],
                linestyle=style,
                color="tab:green" if k else "tab:blue",
                alpha=1.0 if k == 10 else 0.8,
                label=f"{'pre-update' if k == 0 else f'{k} grad step' + ('s' if k > 1 else '')}",
            )
        sx, sy = panel["support"]
        axis.scatter(sx, sy, marker="^", color="black", zorder=3, label=f"{panel['shots']} points used")
        axis.set(title=panel["label"], ylim=(-6, 6))
        axis.legend(fontsize=7, loc="lower right")
    for axis in list(axes.flat)[len(panels):]:
        axis.axis("off")
    save_figure(figure, path)
    summary = [{"label": p["label"], "shots": p["shots"], "mse_on_grid": p["mse"]} for p in panels]
    return {"amplitude": amplitude, "phase": phase, "panels": summary}


def embedding_figure(trained: list[Trained], path: Path) -> list[dict[str, Any]]:
    """One test task per metric-based row: queries (dots, crossed out if misclassified), support
    (triangles) and class means of the support (stars), on the first two principal components."""
    panels: list[dict[str, Any]] = []
    for row, _, _, learner, config in trained:
        encoder = getattr(learner, "encoder", None)
        if encoder is None or config.dataset.name == "sinusoid":
            continue
        tasks = build_tasks(config, "test")
        if not isinstance(tasks, TaskDistribution):
            continue
        batch = next(tasks.episodes(1, batch_size=1))
        sx, sy, qx, qy = batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.query_y[0]
        ways = ways_of(sy)
        learner.eval()
        with torch.no_grad():
            predicted = learner.adapt(sx, sy, ways=ways)(qx).argmax(-1)
            embedded = encoder(torch.cat([sx, qx])).flatten(1)
        means = torch.stack([embedded[: len(sy)][sy == c].mean(0) for c in range(ways)])
        points = torch.cat([embedded, means])
        centered = points - points.mean(0)
        _, singular, vh = torch.linalg.svd(centered, full_matrices=False)
        flat = centered @ vh[:2].T
        explained = (singular[:2] ** 2).sum().item() / (singular**2).sum().item()
        panels.append({
            "label": row.label,
            "flat": flat,
            "support": len(sy),
            "queries": len(qy),
            "sy": sy,
            "qy": qy,
            "predicted": predicted,
            "ways": ways,
            "explained": explained,
            "accuracy": (predicted == qy).float().mean().item(),
        })
    if not panels:
        return []
    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.6 * columns, 4.4 * rows + 0.4), dpi=90)
    axes = figure.subplots(rows, columns, squeeze=False)
    colors = matplotlib.colormaps["tab20" if max(p["ways"] for p in panels) > 10 else "tab10"]
    for axis, p in zip(axes.flat, panels, strict=False):  # the grid may have spare cells, blanked below
        support = p["flat"][: p["support"]]
        queries = p["flat"][p["support"] : p["support"] + p["queries"]]
        means = p["flat"][-p["ways"] :]
        for c in range(p["ways"]):
            color = colors(c % colors.N)
            right = (p["qy"] == c) & (p["predicted"] == c)
            wrong = (p["qy"] == c) & (p["predicted"] != c)
            axis.scatter(queries[right, 0], queries[right, 1], s=12, color=color, alpha=0.7)
            axis.scatter(queries[wrong, 0], queries[wrong, 1], s=30, color=color, marker="x")
            own = p["sy"] == c
            axis.scatter(support[own, 0], support[own, 1], s=45, color=color, marker="^", edgecolors="black")
            axis.scatter(means[c, 0], means[c, 1], s=220, color=color, marker="*", edgecolors="black")
        axis.set(title=f"{p['label']}: {100 * p['accuracy']:.0f}% on this task", xticks=[], yticks=[],
                 xlabel=f"PC1-2 hold {100 * p['explained']:.0f}% of the variance")
    for axis in list(axes.flat)[len(panels):]:
        axis.axis("off")
    handles = [Line2D([], [], marker=m, linestyle="", color="gray", markeredgecolor=e, markersize=z, label=label)
               for m, e, z, label in (("o", "gray", 5, "query"), ("x", "gray", 7, "misclassified query"),
                                      ("^", "black", 7, "support"), ("*", "black", 13, "class mean of the support"))]
    figure.legend(handles=handles, loc="lower center", ncol=2 if columns == 1 else 4, fontsize=8, frameon=False)
    save_figure(figure, path, rect=(0, 0.12 if columns == 1 else 0.07, 1, 1))
    return [{"label": p["label"], "ways": p["ways"], "queries": p["queries"], "accuracy": p["accuracy"],
             "explained_variance": p["explained"]} for p in panels]


def draw_figures(
    figures: tuple[str, ...], metric: str, trained: list[Trained], folder: Path, keep: bool = False
) -> dict[str, Any]:
    """Learning curves of every run, and the ``figures`` asked for; their files and numbers (``keep``: the steps
    figure's points kept in the run folders, as a reproduction keeps its measures)."""
    files = [str(p) for p in plot_runs([t[2] for t in trained], folder)]
    data: dict[str, Any] = {}
    if "steps" in figures:
        data["steps"] = steps_figure(trained, metric, folder / "steps.png", keep)
    if "sinusoid" in figures:
        data["sinusoid"] = sinusoid_figure(trained, folder / "sinusoid.png")
    if "embedding" in figures:
        data["embedding"] = embedding_figure(trained, folder / "embedding.png")
    files += [str(folder / f"{name}.png") for name, value in data.items() if value]
    return {"files": files, **data}


def figures_of_runs(runs: list[str | Path], figures: tuple[str, ...], out: str | Path | None = None) -> list[str]:
    """``fastadapt plot RUN... --figure ...``: the same figures for run folders, each tested as its
    config says, written to ``out`` (default: the first run's folder)."""
    unknown = set(figures) - set(FIGURES)
    if unknown:
        raise ConfigError(f"unknown figures {sorted(unknown)}; known: {', '.join(FIGURES)}")
    if not figures:  # the learning curves need the logs only, not the trained models
        return [str(p) for p in plot_runs(runs, out)]
    trained: list[Trained] = []
    for run in runs:
        learner, config = load_learner(run)
        trained.append((Row(Path(run).name, config.name, (), (Measure("test"),)), 0, Path(run), learner, config))
    if "sinusoid" in figures and any(c.dataset.name != "sinusoid" for *_, c in trained):
        raise ConfigError("--figure sinusoid draws sinusoid regression runs only")
    metric = "mse" if trained[0][4].dataset.name == "sinusoid" else "accuracy"
    return draw_figures(figures, metric, trained, Path(out) if out is not None else Path(runs[0]))["files"]
