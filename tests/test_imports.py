"""The package's modules import one another without cycles, deferred imports inside functions included."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fastadapt

SOURCE = Path(fastadapt.__file__).resolve().parents[1]


def _imports() -> dict[str, set[str]]:
    """Each fastadapt module and the fastadapt modules it imports anywhere in its code: ``from X import a`` reaches
    ``X.a`` when that is a module, else ``X`` itself (a package's ``__init__`` when X is a package)."""
    files = {".".join(f.relative_to(SOURCE).with_suffix("").parts).removesuffix(".__init__"): f
             for f in (SOURCE / "fastadapt").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, file in files.items():
        reached = set()
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = (f"{node.module}.{alias.name}" for alias in node.names)
                reached |= {name if name in files else node.module for name in names}
            elif isinstance(node, ast.Import):
                reached |= {a.name for a in node.names}
        graph[module] = {m for m in reached if m in files and m != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = _imports()
    assert {"fastadapt.rl.mujoco", "fastadapt.checkpoint", "fastadapt.version"} <= set(graph)
    assert "fastadapt.rl.mujoco" in graph["fastadapt.rl.families"]  # deferred imports are seen
    assert _cycles(graph) == []


def test_the_version_has_a_module_of_its_own_and_matches_the_package_metadata() -> None:
    from fastadapt.version import __version__

    declared = re.search(r'^version = "(.+)"$', (SOURCE.parent / "pyproject.toml").read_text(), re.MULTILINE)
    assert declared is not None and fastadapt.__version__ == __version__ == declared.group(1)
