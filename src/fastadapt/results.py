"""``docs/RESULTS.md`` generated from stored result files, so that every number in it traces to one.

The document is written from a template in which each number is a reference into a result file,
``{{ FILE.json:path.to.value | format }}``, or arithmetic on such references
(``{{ a.json:test.accuracy - b.json:test.accuracy | pt }}``); ``{{ reproductions }}`` expands to
the comparison table and figures of every stored ``fastadapt reproduce`` report, ``{{ reproductions full }}``
to those of one budget.
``fastadapt results collect`` copies a run's ``result.json`` or a reproduction's report and
figures into the results folder; ``fastadapt results build`` writes the document.
"""

from __future__ import annotations

import ast
import json
import operator
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastadapt.errors import ConfigError
from fastadapt.reproduce.report import HEADER, sense, table_rows
from fastadapt.storage import atomic_write_text

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
REFERENCE = re.compile(r"([\w./-]+\.json):([\w.-]+)")
TEMPLATE = "RESULTS.template.md"
REPRODUCTIONS = "reproduce"

FORMATS: dict[str, Callable[[Any], str]] = {
    "pct": lambda v: f"{100 * v:.2f}%",  # a fraction as a percentage
    "pt": lambda v: f"{100 * v:.1f}",  # a difference of fractions in percentage points
    "f0": lambda v: f"{v:.0f}",
    "f1": lambda v: f"{v:.1f}",
    "f2": lambda v: f"{v:.2f}",
    "f3": lambda v: f"{v:.3f}",
    "signed2": lambda v: f"{v:+.2f}",
    "int": lambda v: f"{round(v):,}",
    "g3": lambda v: f"{v:.3g}",  # three significant digits, in exponent form when large
    "min": lambda v: f"{v / 60:.1f}",  # seconds as minutes
    "str": str,
}
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _lookup(results: Path, file: str, path: str, cache: dict[str, Any]) -> Any:
    if file not in cache:
        source = results / file
        if not source.is_file():
            raise ConfigError(f"the template refers to {file}, which is not in {results}")
        cache[file] = json.loads(source.read_text())
    value = cache[file]
    for part in path.split("."):
        try:
            value = value[int(part)] if isinstance(value, list) else value[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ConfigError(f"{file} has no {path} (at {part!r})") from None
    return value


def _evaluate(node: ast.AST, values: dict[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, values)
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, values)
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    raise ConfigError(f"a template expression may hold references, numbers and + - * / only, not {ast.dump(node)}")


def render_value(expression: str, results: Path, cache: dict[str, Any]) -> str:
    """One placeholder's text: its references looked up, its arithmetic done, its format applied."""
    body, _, fmt = expression.partition("|")
    values: dict[str, Any] = {}

    def name(match: re.Match[str]) -> str:
        key = f"ref{len(values)}"
        values[key] = _lookup(results, match.group(1), match.group(2), cache)
        return key

    code = REFERENCE.sub(name, body.strip())
    if not values:
        raise ConfigError(f"{{{{{expression}}}}} refers to no result file (FILE.json:path)")
    try:
        value = _evaluate(ast.parse(code, mode="eval"), values)
    except SyntaxError:
        raise ConfigError(f"{{{{{expression}}}}} is not an expression over references") from None
    fmt = fmt.strip() or ("str" if isinstance(value, str) else "")
    if fmt not in FORMATS:
        raise ConfigError(f"{{{{{expression}}}}}: give a format after |, one of {', '.join(FORMATS)}")
    return FORMATS[fmt](value)


def _machine(machine: dict[str, Any]) -> str:
    return (f"{machine['processor']}, {machine['threads']} threads, {machine.get('cuda') or 'no GPU'}; "
            f"Python {machine['python']}, torch {machine['torch']}, fastadapt {machine['fastadapt']}")


def reproduction_section(report: dict[str, Any], folder: str) -> str:
    """A stored reproduction as markdown: the comparison table, the command, the figures."""
    lines = [
        f"### {report['title']}",
        "",
        f"`{report['command']}`: budget **{report['budget']}** "
        f"({', '.join(f'`{o}`' for o in report['budget_overrides']) or 'the papers schedule'}), "
        f"{report['seeds']} seed(s); "
        f"95% CI {'over the test episodes' if report['seeds'] == 1 else 'Student-t over the seeds'}; "
        f"{sense(report['metric'])}. Paper: {report['source']}. "
        f"Ran {report['date']} on {_machine(report['machine'])}; "
        f"{sum(r['train_time_s'] for row in report['rows'] for r in row['runs']) / 60:.1f} min of training in all. "
        f"[report]({folder}/reproduce.json)",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + " --- |" * len(HEADER),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(report)]
    lines += [line for row in report["rows"] if (line := _tuned(row))]
    lines += _protocol_notes(report["rows"])
    figures = [Path(f).name for f in report["figures"]["files"]]
    if figures:
        lines += ["", " ".join(f"![{name[:-4]}]({folder}/{name})" for name in figures)]
    return "\n".join(lines)


def _tuned(row: dict[str, Any]) -> str | None:
    """What a row picked on validation tasks, per seed, in one line; None where it tuned nothing."""
    picks = [run["tuned"] for run in row["runs"] if run.get("tuned")]
    if not picks:
        return None
    first = picks[0]
    tried = ", ".join(f"{v:g}: {'diverged' if s is None else FORMATS['g3'](s)}" for v, s in zip(
        first["values"], first["validation"], strict=True))
    chosen = ", ".join(f"{p['chosen']:g}" for p in picks)
    return (f"\n{row['label']}: {', '.join(f'`{k}`' for k in first['keys'])} picked on validation tasks under "
            f"\"{first['measure']}\": {chosen} (seed 0 tried {tried}).")


def _protocol_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Where each row's protocol differs from the paper's, and what of the paper's is unchecked, as its report
    recorded them: one line per distinct note, naming the rows it is about."""
    notes: dict[str, list[str]] = {}
    for row in rows:
        protocol = row.get("protocol")
        if not protocol:
            continue
        parts = [f"ours differs in *{part}*: {protocol['ours'][part]}" for part in protocol["differs"]]
        if protocol.get("unchecked"):
            parts.append(f"the paper's *{', '.join(protocol['unchecked'])}* unchecked")
        if parts:
            notes.setdefault("; ".join(parts), []).append(row["label"])
    return [f"\nProtocol ({', '.join(labels)}): {note}." for note, labels in notes.items()]


def _reports(results: Path, budget: str | None) -> list[tuple[Path, dict[str, Any]]]:
    """The stored reports (file and contents), by name; only those of ``budget`` where one is given."""
    reports = [(p, json.loads(p.read_text())) for p in sorted((results / REPRODUCTIONS).glob("*/reproduce.json"))]
    return [(p, report) for p, report in reports if budget is None or report["budget"] == budget]


def build(results: str | Path) -> str:
    """The document: the template of ``results`` with every placeholder filled in."""
    results = Path(results)
    template = results / TEMPLATE
    if not template.is_file():
        raise ConfigError(f"there is no {TEMPLATE} in {results}")
    cache: dict[str, Any] = {}

    def fill(match: re.Match[str]) -> str:
        words = match.group(1).split()
        if words and words[0] == "reproductions" and len(words) <= 2:
            reports = _reports(results, words[1] if len(words) == 2 else None)
            return "\n\n".join(
                reproduction_section(report, f"{results.name}/{REPRODUCTIONS}/{p.parent.name}")
                for p, report in reports
            )
        return render_value(match.group(1), results, cache)

    header = (
        f"<!-- generated by `fastadapt results build` from {results.name}/: "
        f"edit {results.name}/{TEMPLATE}, not this file -->\n"
    )
    return header + PLACEHOLDER.sub(fill, template.read_text())


def write(results: str | Path, out: str | Path | None = None) -> Path:
    """Build the document and write it (default: ``RESULTS.md`` beside the results folder)."""
    results = Path(results)
    target = Path(out) if out is not None else results.parent / "RESULTS.md"
    atomic_write_text(build(results), target)
    return target


def collect(folder: str | Path, results: str | Path) -> list[Path]:
    """Copy a reproduction's report and figures (to ``reproduce/NAME-BUDGET/``) or a run's
    ``result.json`` (to ``RUN.json``) into the results folder; return what was written."""
    folder, results = Path(folder), Path(results)
    if (folder / "reproduce.json").is_file():
        target = results / REPRODUCTIONS / folder.name
        target.mkdir(parents=True, exist_ok=True)
        written = []
        for source in [folder / "reproduce.json", *sorted(folder.glob("*.png"))]:
            shutil.copyfile(source, target / source.name)
            written.append(target / source.name)
        return written
    if (folder / "result.json").is_file():
        results.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "result.json", results / f"{folder.name}.json")
        return [results / f"{folder.name}.json"]
    raise ConfigError(
        f"{folder} holds neither a reproduce.json (fastadapt reproduce) nor a result.json (fastadapt train)"
    )
