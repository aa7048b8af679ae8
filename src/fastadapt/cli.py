"""The ``fastadapt`` command: a thin shell over ``fastadapt.experiment`` and ``fastadapt.config``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch

from fastadapt.config import DEFAULT_PRESET, build_config, device_of, load_preset, preset_names
from fastadapt.config.keys import key_lines
from fastadapt.distributed import current_world, leave_world
from fastadapt.errors import ConfigError, FastAdaptError
from fastadapt.nn.functional import STATISTICS

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _keys_help() -> str:
    lines = ["config keys (override any of them as key=value):", *key_lines()]
    lines += [
        "your own model and data (importable from the current folder or PYTHONPATH):",
        "  model.target=MODULE:FUNCTION    called with model.kwargs (a mapping), returns a torch.nn.Module",
        "  dataset.target=MODULE:FUNCTION  called with split='train'|'val'|'test' and dataset.kwargs, returns a",
        "                                  fastadapt ClassDataset or a torch Dataset of (x, label) pairs",
    ]
    return "\n".join(lines)


def _data_and_threads(command: argparse.ArgumentParser) -> None:
    """The options of commands that train: where the data is, whether to fetch it, CPU threads."""
    command.add_argument("--data-dir", help="dataset root (default $FASTADAPT_DATA, else the per-user cache folder)")
    command.add_argument("--download", action="store_true", help="download a missing dataset from its official source")
    command.add_argument("--threads", type=int, help="torch CPU threads")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastadapt", description="Meta-learning for PyTorch: train, evaluate and list presets.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="meta-train a preset, then meta-test it",
        description=f"Meta-train a preset (default: {DEFAULT_PRESET}, on the embedded glyphs dataset), keep the "
        "best validation checkpoint, and meta-test it (or the last state: test.checkpoint=last) on held-out classes.",
        epilog=_keys_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--preset", help=f"preset name (default {DEFAULT_PRESET}; `fastadapt presets` lists them)")
    train.add_argument("--config", type=Path, metavar="FILE.yaml",
                       help="your own config file (preset keys; `extends: PRESET` starts from a preset)")
    train.add_argument("--run-dir", type=Path,
                       help="folder for config, metrics, checkpoints and result (default runs/<preset>-<time>)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue an interrupted run from its last checkpoint (--data-dir: where its data is now)")
    _data_and_threads(train)
    train.add_argument("--tensorboard", action="store_true",
                       help="also log to TensorBoard (RUN_DIR/tensorboard; needs the tensorboard package)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="print the result as one JSON object")

    evaluate = commands.add_parser("eval", help="meta-test a run or checkpoint: accuracy ± 95%% CI")
    evaluate.add_argument("checkpoint", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    evaluate.add_argument("--episodes", type=int, help="number of test tasks (default: the run's test.episodes)")
    evaluate.add_argument("--inner-steps", type=int, help="adaptation steps of gradient-based methods")
    evaluate.add_argument("--split", choices=("test", "val"), default="test")
    evaluate.add_argument("--statistics", choices=STATISTICS,
                          help="batch-norm statistics for the queries (default: the run's test.statistics): query "
                          "(transductive), support, support_and_query (each query with the support set), "
                          "population (recorded on training tasks, as eval mode)")
    evaluate.add_argument("--data-dir", help="dataset root, if not where the run found it")
    evaluate.add_argument("--threads", type=int, help="torch CPU threads")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object (accuracy, ci95, episodes, ...)")
    evaluate.add_argument("--baseline", type=Path, metavar="RUN_DIR",
                          help="RL runs: also evaluate this run (e.g. a pretrained policy) on the same tasks, "
                          "side by side")

    predict = commands.add_parser(
        "predict",
        help="few-shot classify your own image files with a trained model",
        description="Adapt a trained model to the classes of --support (one subfolder of images per class) and "
        "print the predicted class and its probability for each query file. Query folders of class folders "
        "also report accuracy.",
    )
    predict.add_argument("checkpoint", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    predict.add_argument("--support", type=Path, required=True, metavar="DIR",
                         help="folder with one subfolder of images per class")
    predict.add_argument("--query", type=Path, required=True, nargs="+", metavar="PATH",
                         help="image files, or folders of them")
    predict.add_argument("--inner-steps", type=int, help="adaptation steps of gradient-based methods")
    predict.add_argument("--force", action="store_true",
                         help="predict even if the images look inverted relative to the training data")
    predict.add_argument("--data-dir", help="dataset root, if not where the run found it (a run tested on population "
                         "statistics records them from its training data)")
    predict.add_argument("--threads", type=int, help="torch CPU threads")
    predict.add_argument("--json", action="store_true", help="print one JSON object (classes, predictions, accuracy)")

    reproduce = commands.add_parser(
        "reproduce",
        help="run a paper's experiment end to end and compare with the paper's numbers",
        description="Train every row of a paper's experiment (per seed), test it as its preset says (the paper's "
        "protocol, except where `--list` names a difference) and print ours ± 95% CI next to the paper's number, "
        "the gap and whether the intervals overlap. The report and figures "
        "go to OUT/NAME-BUDGET/ (reproduce.json, curves.png, steps.png, sinusoid.png, embedding.png); running it again "
        "reuses finished runs and resumes an interrupted one.",
    )
    reproduce.add_argument("name", nargs="?", help="what to reproduce (--list shows the names)")
    reproduce.add_argument("--budget", choices=("quick", "full"), default="quick",
                           help="quick: minutes on a CPU (shortened training); full: the paper's schedule "
                           "(default quick)")
    reproduce.add_argument("--seeds", type=int, help="training seeds per row (default: the budget's)")
    reproduce.add_argument("--out", type=Path, default=Path("runs/reproduce"),
                           help="folder of the runs and reports (default runs/reproduce)")
    _data_and_threads(reproduce)
    reproduce.add_argument("--list", action="store_true",
                           help="list what can be reproduced and where each protocol differs from its paper's")
    reproduce.add_argument("--no-progress", action="store_true", help="no progress bars")
    reproduce.add_argument("--json", action="store_true", help="print the report as one JSON object (with --list: "
                           "every reproduction's rows, the papers' numbers and tables, both protocols)")

    results = commands.add_parser("results", help="collect result files and generate docs/RESULTS.md from them")
    steps = results.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = steps.add_parser("build",
                             help="write RESULTS.md from RESULTS.template.md and the result files it refers to")
    build.add_argument("--check", action="store_true",
                       help="write nothing; fail if RESULTS.md differs from what the files give")
    build.add_argument("--out", type=Path, help="the document (default: RESULTS.md beside the results folder)")
    collect = steps.add_parser("collect", help="copy runs' result.json or reproductions' reports and figures "
                               "into the results folder")
    collect.add_argument("folders", nargs="+", type=Path, metavar="FOLDER",
                         help="run folders or fastadapt reproduce output folders")
    for step in (build, collect):
        step.add_argument("--results", type=Path, default=Path("docs/results"),
                          help="the results folder (default docs/results)")

    commands.add_parser("presets", help="list the presets")

    plot = commands.add_parser(
        "plot",
        help="learning curves of one or several runs overlaid (and return against adaptation steps for RL runs)",
        description="Write curves.png (meta-training loss; validation metric with its 95% CI band) for the runs "
        "given, overlaid, adaptation.png for RL runs, and the --figure ones, into --out (default: the first run's "
        "folder).",
    )
    plot.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    plot.add_argument("--out", type=Path, metavar="DIR",
                      help="folder for the PNG files (default: the first run's folder)")
    plot.add_argument("--figure", action="append", default=[], choices=("steps", "sinusoid", "embedding"),
                      help="also draw: steps (test metric against adaptation steps, gradient-based runs), "
                      "sinusoid (the MAML paper's figure, sinusoid runs), embedding (one test task's embeddings, "
                      "metric-based runs); repeatable")

    render = commands.add_parser(
        "render",
        help="picture an RL policy before and after adaptation (GIF for MuJoCo tasks, PNG for 2D navigation)",
        description="Adapt a trained MAML-RL run to one task and write the policy before and after: an animated GIF "
        "of the MuJoCo scene (headless, MUJOCO_GL=egl by default), or a plot of 2D-navigation paths.",
    )
    render.add_argument("checkpoint", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    render.add_argument("--task", help="the task's parameters, comma-separated (a goal 'x,y', a velocity, "
                        "a direction +1/-1); default: the first test task")
    render.add_argument("--steps", type=int, default=1, help="adaptation steps (default 1)")
    render.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to write the GIF or PNG")

    data = commands.add_parser(
        "data",
        help="list, prepare, verify and describe the few-shot benchmarks",
        description="The benchmark datasets: where they live (--data-dir, else $FASTADAPT_DATA, else the per-user "
        "cache folder), whether their files are present and match the published checksums, and their decoded caches.",
    )
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list",
                                 help="every known benchmark: present or not, decoded or not, classes per split")
    info = actions.add_parser("info", help="one benchmark's files, sources, checksums state, caches and split")
    info.add_argument("name")
    info.add_argument("--checksums", action="store_true",
                      help="also hash the files present and compare with the published checksums")
    prepare = actions.add_parser("prepare", help="decode a benchmark into its cache (downloading it with --download)")
    prepare.add_argument("name")
    prepare.add_argument("--download", action="store_true",
                         help="download missing files from the official source or a mirror")
    prepare.add_argument("--source", type=Path, metavar="DIR",
                         help="decode from files you already have (for miniImageNet: your ILSVRC-2012 train folder)")
    prepare.add_argument("--image-size", type=int, help="decode at this size (default: the benchmark's own)")
    prepare.add_argument("--force", action="store_true", help="decode again even if a cache exists")
    verify = actions.add_parser("verify",
                                help="check the files against the published checksums and decode them again")
    verify.add_argument("name")
    verify.add_argument("--image-size", type=int, help="decode at this size (default: the benchmark's own)")
    for sub in (listing, info, prepare, verify):
        sub.add_argument("--data-dir", help="dataset root (default $FASTADAPT_DATA, else the per-user cache folder)")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _overrides(extra: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    unknown = [item for item in extra if item.startswith("-") or "=" not in item]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return list(extra)


def _train(args: argparse.Namespace, overrides: list[str]) -> int:
    from fastadapt.experiment import carried, read_config, run_experiment

    if args.resume is not None:
        if args.preset or args.config or overrides or args.run_dir:
            raise ConfigError(
                "--resume continues a run with its own config: give no --preset, --config, --run-dir or key=value "
                "overrides"
            )
        config, run_dir = carried(args.resume, read_config(args.resume), args.data_dir), args.resume
    else:
        if args.data_dir:
            overrides.append(f"dataset.data_dir={args.data_dir}")
        if args.download:
            overrides.append("dataset.download=true")
        if args.tensorboard:
            overrides.append("train.tensorboard=true")
        config = build_config(args.preset, overrides, config_file=args.config)
        run_dir = args.run_dir or Path("runs") / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    world = current_world(device_of(config))
    run_dir = world.from_main(run_dir)  # under torchrun, every process takes rank 0's folder
    if not args.json and world.is_main:
        print(f"{config.name}: {config.description}".rstrip(": "))
        print(f"run folder: {run_dir}" + (f" ({world.size} processes)" if world.distributed else ""))
    result = run_experiment(config, run_dir, resume=args.resume is not None, progress=not args.no_progress)
    if not world.is_main:
        return 0
    if args.json:
        print(json.dumps(result))
        return 0
    best = result["best_validation"]
    if best is not None:
        print(f"best validation {best['metric']} {best[best['metric']]:.4f} ± {best['ci95']:.4f}, "
              f"loss {best['loss']:.4f}, at step {best['step']}")
    test = result["test"]
    metric = test["metric"]
    value, ci = test[metric], test["ci95"]
    shown = f"{100 * value:.2f}% ± {100 * ci:.2f}%" if metric == "accuracy" else f"{value:.4f} ± {ci:.4f}"
    tested = (f"the mean of the {result['ensemble']} best checkpoints" if "ensemble" in result
              else f"the state at step {result['tested_step']}")
    print(
        f"test {metric}: {shown} (95% CI, {test['episodes']} episodes; {tested}; "
        f"trained {result['train_time_s'] / 60:.1f} min)"
    )
    for row in result.get("adaptation", []):
        print(f"  return after {row['steps']} adaptation steps: {row['return']:.2f} ± {row['ci95']:.2f}")
    print(f"saved {Path(run_dir) / 'result.json'}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from fastadapt.experiment import adaptation_test, evaluate_run, is_rl, load_learner
    from fastadapt.rl.evaluate import paired_gain

    if args.episodes is not None and args.episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {args.episodes}")
    learner, config = load_learner(args.checkpoint, args.data_dir)
    if is_rl(config):
        if args.statistics is not None:
            raise ConfigError("--statistics is a batch-norm protocol of few-shot classification, not of RL: drop it")
        curve = adaptation_test(learner, config, args.episodes, args.inner_steps, args.split)
        other = None
        if args.baseline is not None:
            baseline, baseline_config = load_learner(args.baseline)
            if not is_rl(baseline_config) or baseline_config.dataset.name != config.dataset.name:
                raise ConfigError(f"--baseline {args.baseline} is not an RL run on {config.dataset.name}")
            other = adaptation_test(baseline, config, args.episodes, len(curve) - 1, args.split)  # the same tasks
        gains = [paired_gain(curve[0], row) for row in curve]
        if args.json:
            rows = [
                {"steps": k, **r.to_dict(), "gain": gains[k][0], "gain_ci95": gains[k][1],
                 **({"baseline": other[k].to_dict(), "above_baseline": paired_gain(other[k], r)} if other else {})}
                for k, r in enumerate(curve)
            ]
            print(json.dumps(rows))
            return 0
        for k, row in enumerate(curve):
            line = f"{args.split} return after {k} adaptation steps: {row.mean:.2f} ± {row.ci95:.2f}"
            if k:
                line += f" (gain {gains[k][0]:+.2f} ± {gains[k][1]:.2f}, paired)"
            if other:
                diff, diff_ci = paired_gain(other[k], row)
                line += (
                    f"   baseline {other[k].mean:.2f} ± {other[k].ci95:.2f} "
                    f"(ours {diff:+.2f} ± {diff_ci:.2f} above it, paired)"
                )
            print(line + f" (95% CI, {row.episodes} tasks)")
        return 0
    result = evaluate_run(
        args.checkpoint, args.episodes, args.inner_steps, args.split, args.data_dir, progress=not args.json,
        statistics=args.statistics,
    )
    print(json.dumps(result.to_dict()) if args.json else f"{args.split} {result}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fastadapt.predict import predict_run

    if args.inner_steps is not None and args.inner_steps < 0:
        raise ConfigError(f"--inner-steps must be at least 0, got {args.inner_steps}")
    report = predict_run(args.checkpoint, args.support, args.query, args.inner_steps, args.force, args.data_dir)
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    for p in report.predictions:
        truth = f"  (true class {p.truth})" if p.truth is not None else ""
        print(f"{p.path}\t{p.label}\t{p.probability:.3f}{truth}")
    if report.accuracy is not None:
        known = sum(p.truth is not None for p in report.predictions)
        print(f"accuracy {100 * report.accuracy:.2f}% on {known} queries of known class")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from fastadapt.reproduce import format_table, reproduce, reproductions

    if args.list:
        if args.json:
            print(json.dumps({name: item.listing() for name, item in reproductions().items()}))
            return 0
        for name, item in reproductions().items():
            differs, unchecked = item.differences(), item.unchecked()
            note = f"ours differs from the paper's in {', '.join(differs)}" if differs else "no known difference"
            note += f"; the paper's unchecked in {', '.join(unchecked)}" if unchecked else ""
            print(f"{name:28s} {item.title}")
            print(f"{'':28s} protocol: {note}")
        return 0
    if args.name is None:
        raise ConfigError(
            "name what to reproduce, e.g. `fastadapt reproduce maml-sinusoid`; "
            "`fastadapt reproduce --list` shows the names"
        )
    echo = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    report = reproduce(args.name, args.budget, args.out, args.seeds, args.data_dir, args.download,
                       progress=not args.no_progress and not args.json, echo=echo)
    if args.json:
        print(json.dumps(report))
        return 0
    print()
    print(format_table(report))
    saved = Path(args.out) / f"{args.name}-{args.budget}" / "reproduce.json"
    print(f"\nsaved {saved} and the figures: {', '.join(report['figures']['files'])}")
    return 0


def _results(args: argparse.Namespace) -> int:
    from fastadapt import results

    if args.action == "collect":
        for folder in args.folders:
            for written in results.collect(folder, args.results):
                print(f"wrote {written}")
        return 0
    target = args.out or args.results.parent / "RESULTS.md"
    if args.check:
        if not target.is_file() or target.read_text() != results.build(args.results):
            raise ConfigError(f"{target} is not what {args.results} gives: run `fastadapt results build`")
        print(f"{target} is up to date with {args.results}")
        return 0
    print(f"wrote {results.write(args.results, target)}")
    return 0


def _presets() -> int:
    for name in preset_names():
        print(f"{name:28s} {load_preset(name).get('description', '')}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from fastadapt.config import build_tasks
    from fastadapt.experiment import load_learner
    from fastadapt.rl.mamlrl import MAMLRL
    from fastadapt.rl.render import render
    from fastadapt.rl.tasks import RLTasks

    learner, config = load_learner(args.checkpoint)
    if not isinstance(learner, MAMLRL):
        raise ConfigError(f"{args.checkpoint} is not a reinforcement-learning run: render shows MAML-RL policies")
    if args.task:
        try:
            task = torch.tensor([float(v) for v in args.task.split(",")], dtype=torch.float64)
        except ValueError:
            raise ConfigError(f"--task must be comma-separated numbers, got {args.task!r}") from None
        if task.numel() != learner.family.task_dim:
            raise ConfigError(
                f"{learner.family.name} tasks have {learner.family.task_dim} numbers, --task gave {task.numel()}"
            )
    else:
        tasks = build_tasks(config, "test")
        assert isinstance(tasks, RLTasks)  # a MAML-RL run's config names an RL task family
        task = next(tasks.episodes(1)).tasks[0]
    print(f"wrote {render(learner, task, args.out, args.steps)} ({learner.family.describe(task)})")
    return 0


def _size(count: int | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return str(count)


def _print_info(report: dict[str, Any]) -> None:
    print(f"{report['name']}: {report['title']} ({report['reference']})")
    print(f"  folder:  {report['folder']} ({'files present' if report['present'] else 'files missing'})")
    for row in report["sources"]:
        state = "present, " + _size(row["bytes"]) if row["present"] else "missing"
        published = f"{row['published'][0]} {row['published'][1]}" if row["published"] else "no published checksum"
        checksum = f"; checksum {row['checksum']}" if "checksum" in row else ""
        print(f"  file:    {row['file']}: {state}; {published}" + checksum)
        for url in row["urls"]:
            print(f"           from {url}")
    none_yet = {"file": "none yet (`fastadapt data prepare " + report["name"] + "`)", "bytes": None}
    for cache in report["caches"] or [none_yet]:
        print(f"  decoded: {cache['file']}" + (f" ({_size(cache['bytes'])})" if cache["bytes"] else ""))
    classes = " / ".join(f"{n} {s}" for s, n in report["classes"].items())
    print(f"  classes: {classes}, {report['image_size']}x{report['image_size']} pixels")
    print(f"  split:   {report['split_source']}")


def _data(args: argparse.Namespace) -> int:
    from fastadapt.datasets import catalog

    if args.action == "list":
        rows = catalog.listing(args.data_dir)
        if args.json:
            print(json.dumps(rows))
            return 0
        print(f"{'name':16s}{'files':9s}{'decoded':9s}{'classes (train/val/test)':26s}folder")
        for row in rows:
            classes = "/".join(str(n) for n in row["classes"].values())
            present = "present" if row["present"] else "missing"
            cached = "yes" if row["caches"] else "no"
            print(f"{row['name']:16s}{present:9s}{cached:9s}{classes:26s}{row['folder']}")
        return 0
    if args.action == "info":
        report = catalog.info(args.name, args.data_dir, checksums=args.checksums)
    elif args.action == "prepare":
        report = catalog.prepare(args.name, args.data_dir, args.image_size, args.download, args.source, args.force)
    else:
        report = catalog.verify(args.name, args.data_dir, args.image_size)
    if args.json:
        print(json.dumps(report))
        return 0
    if args.action in ("info", "verify"):
        _print_info(report)
    if args.action != "info":
        decoded = report if args.action == "prepare" else report["decoded"]
        c, h, w = decoded["shape"]
        splits = ", ".join(f"{s} {v['classes']} classes / {v['images']} images" for s, v in decoded["splits"].items())
        print(
            f"{decoded['name']}: {decoded['images']} images of {c}x{h}x{w} ({splits}) "
            f"in {decoded['cache']} [{decoded['seconds']:.1f} s]"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command != "train" and extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if getattr(args, "threads", None):
            torch.set_num_threads(args.threads)
        if args.command == "train":
            return _train(args, _overrides(extra, parser))
        if args.command == "eval":
            return _eval(args)
        if args.command == "predict":
            return _predict(args)
        if args.command == "data":
            return _data(args)
        if args.command == "render":
            return _render(args)
        if args.command == "reproduce":
            return _reproduce(args)
        if args.command == "results":
            return _results(args)
        if args.command == "plot":
            from fastadapt.reproduce.figures import figures_of_runs

            for written in figures_of_runs(args.runs, tuple(args.figure), args.out):
                print(f"wrote {written}")
            return 0
        return _presets()
    except FastAdaptError as error:
        if args.debug:
            raise
        print(f"fastadapt: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fastadapt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        leave_world()


if __name__ == "__main__":
    sys.exit(main())
