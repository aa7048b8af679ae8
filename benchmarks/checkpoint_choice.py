"""What choosing the checkpoint on validation changes: a reproduction row's measures on each run's
checkpoint best on validation and on its last one (what the MAML and Reptile code test; a run tests the
one its `test.checkpoint` names), on the same fixed test tasks and with the row's tuning, if any, done
again on each.

    python benchmarks/checkpoint_choice.py maml-sinusoid \
        runs/reproduce/maml-sinusoid-full/maml-meta-trained-with-k-10-seed0 --threads 1 \
        --json > docs/results/sinusoid_checkpoint_choice.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from common import machine, parser

from fastadapt.experiment import load_learner
from fastadapt.reproduce.registry import Reproduction, Row, get
from fastadapt.reproduce.run import measure, slug, tune


def row_of(reproduction: Reproduction, run: Path) -> Row:
    """The row whose runs are named like ``run`` (``ROW-seedN``, as `fastadapt reproduce` names them)."""
    label = run.name.rsplit("-seed", 1)[0]
    for row in reproduction.rows:
        if slug(row.label) == label:
            return row
    named = ", ".join(f"{slug(row.label)}-seedN" for row in reproduction.rows)
    raise SystemExit(f"{run} is not a run of {reproduction.name}: its runs are named {named}")


def measures_at(reproduction: Reproduction, row: Row, checkpoint: Path) -> list[dict[str, Any]]:
    """Each of the row's measures on the learner of ``checkpoint``, tuned as the report tunes it."""
    learner, config = load_learner(checkpoint)
    learner, config, tuned = tune(learner, config, row, reproduction.metric)
    chosen = None if tuned is None else tuned["chosen"]
    return [{"label": item.label, **measure(learner, config, item), "tuned": chosen} for item in row.measures]


def compare(name: str, run: Path) -> dict[str, Any]:
    reproduction = get(name)
    row = row_of(reproduction, run)
    result = json.loads((run / "result.json").read_text())
    best, last = measures_at(reproduction, row, run / "best.pt"), measures_at(reproduction, row, run / "last.pt")
    return {
        "run": str(run), "row": row.label, "best_step": result["best_step"], "last_step": result["train_steps"],
        "measures": [
            {"label": item.label, "paper": None if item.paper is None else item.paper.value, "best": b, "last": la}
            for item, b, la in zip(row.measures, best, last, strict=True)
        ],
    }


def main() -> None:
    p = parser(__doc__ or "", data=False)
    p.add_argument("reproduction", help="a name `fastadapt reproduce --list` shows")
    p.add_argument("runs", type=Path, nargs="+", help="finished run folders of that reproduction")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [compare(args.reproduction, run) for run in args.runs]
    if args.json:
        print(json.dumps({"machine": machine(), "reproduction": args.reproduction, "results": results}, indent=2))
        return
    for result in results:
        print(f"{result['run']} ({result['row']}): best at step {result['best_step']}, last {result['last_step']}")
        for m in result["measures"]:
            print(f"  {m['label']:<20} best {m['best']['value']:.4g} ± {m['best']['ci95']:.3g}   "
                  f"last {m['last']['value']:.4g} ± {m['last']['ci95']:.3g}   paper {m['paper']}")


if __name__ == "__main__":
    main()
