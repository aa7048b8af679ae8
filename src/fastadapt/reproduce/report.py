"""The comparison table of a reproduction report, as the terminal shows it."""

from __future__ import annotations

from typing import Any

from fastadapt.evaluate import higher_is_better


def number(value: float | None, ci95: float | None, metric: str) -> str:
    """``98.79% ± 0.16%`` for accuracy, ``0.456 ± 0.041`` otherwise (``2.95e+17 ± 5.78e+17`` from 10,000 on);
    ``—`` for no number."""
    if value is None:
        return "—"
    if metric == "accuracy":
        return f"{100 * value:.2f}%" + ("" if ci95 is None else f" ± {100 * ci95:.2f}%")
    if abs(value) >= 1e4:  # a diverged mean: fixed point would print every digit of 1e17
        return f"{value:.3g}" + ("" if ci95 is None else f" ± {ci95:.3g}")
    digits = 2 if metric == "return" else 3
    return f"{value:.{digits}f}" + ("" if ci95 is None else f" ± {ci95:.{digits}f}")


def gap(value: float | None, metric: str) -> str:
    if value is None:
        return "—"
    if metric == "accuracy":
        return f"{100 * value:+.2f} pt"
    return f"{value:+.3g}" if abs(value) >= 1e4 else f"{value:+.3f}"


def sense(metric: str) -> str:
    """``higher is better`` or ``lower is better``: how to read ``metric``, in words."""
    return f"{'higher' if higher_is_better(metric) else 'lower'} is better"


def overlap(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """One line per row and measure: row, measure, ours, paper, gap, overlap, training."""
    metric, lines = report["metric"], []
    for row in report["rows"]:
        minutes = sum(r["train_time_s"] for r in row["runs"]) / 60 / len(row["runs"])
        steps = "/".join(str(r["train_steps"]) for r in row["runs"])
        for m in row["measures"]:
            paper = m["paper"] or {}
            lines.append([
                row["label"],
                m["label"],
                number(m["ours"]["value"], m["ours"]["ci95"], metric),
                number(paper.get("value"), paper.get("ci95"), metric),
                gap(m["gap"], metric),
                overlap(m["overlap"]),
                f"{steps} steps, {minutes:.1f} min",
            ])
    return lines


HEADER = ["row", "measure", "ours (95% CI)", "paper (95% CI)", "gap", "overlap", "training per seed"]


def format_table(report: dict[str, Any]) -> str:
    """The plain-text table with a title line, the budget and the source of the papers' numbers."""
    lines = table_rows(report)
    widths = [max(len(r[i]) for r in [HEADER, *lines]) for i in range(len(HEADER))]

    def render(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    interval = "over test episodes" if report["seeds"] == 1 else f"Student-t over {report['seeds']} seeds"
    head = [
        f"{report['name']}: {report['title']}",
        f"budget {report['budget']} ({' '.join(report['budget_overrides']) or 'the paper schedule'}), "
        f"{report['seeds']} seed(s); test {report['metric']} ({sense(report['metric'])}), 95% CI {interval}",
        f"paper: {report['source']}",
        "",
        render(HEADER),
        render(["-" * w for w in widths]),
    ]
    return "\n".join(head + [render(r) for r in lines])
