"""The floors of the architecture (docs/benchmark.md, Layout): a module imports only its own floor
and the floors below, so the ground the plugins stand on never imports what stands on it; inside
the runner wing every module has a sub-floor, so an import cycle there fails a test instead of
hiding behind a function-level import.  Lazy and ``TYPE_CHECKING`` imports count too."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable, Mapping

import pytest

REPO = Path(__file__).resolve().parents[1]

#: floor of a module, by the most specific matching prefix (lowest first)
FLOORS = {
    "harness": 1,  # ground: registry, keys, progress, metrics, stats, data, results, cache, training, world
    "ciphers": 2,
    "attacks": 2,
    "harness.classifiers": 2,
    "reports": 3,
    "harness.conformance": 4,  # test suites of the plugins
    # the runner wing, one sub-floor per module (docs/benchmark.md, Layout, has the diagram)
    "harness.run.config": 4,
    "harness.run.plan": 5,
    "harness.run.identity": 6,
    "harness.run.checks": 6,
    "harness.run.scoring": 7,
    "harness.run.security": 7,
    "harness.run.security_rows": 7,
    "harness.run.cells": 7,
    "harness.run.executors": 8,
    "harness.run.provenance": 8,
    "harness.run.runner": 9,
    "harness.run.progress_display": 9,
    "harness.run.arguments": 9,
    "harness.run.cli": 10,
    "harness.run": 10,  # the package's public surface
}
#: plugins stand side by side but attacks and classifiers may use the cipher contract, not each other;
#: executors launch cells and never need a run's provenance
FORBIDDEN_SIDEWAYS = {("ciphers", "attacks"), ("ciphers", "harness.classifiers"), ("attacks", "harness.classifiers"),
                      ("harness.classifiers", "attacks"), ("harness.run.executors", "harness.run.provenance"),
                      ("harness.run.provenance", "harness.run.executors")}


def _package(module: str) -> str:
    return max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len, default="")


def _modules() -> list[tuple[str, Path]]:
    found = []
    for top in ("harness", "ciphers", "attacks", "reports"):
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


MODULES = {name for name, _ in _modules()}


def _imports(path: Path) -> set[str]:
    """The project modules ``path`` imports: ``from pkg import sub`` names the submodule ``pkg.sub``
    when there is one, else the package ``pkg`` itself."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                names.add(child if child in MODULES else node.module)
    return {n for n in names if _package(n)}


def floor_violations(module: str, imports: Iterable[str]) -> list[str]:
    """Why ``module`` may not import each of ``imports`` (an empty list when it may import them all)."""
    mine, problems = _package(module), []
    for imported in imports:
        theirs = _package(imported)
        if imported in ("harness.run", "harness.conformance") and mine == "harness":  # the package names only
            continue
        if FLOORS[theirs] > FLOORS[mine]:
            problems.append(f"{module} (floor {FLOORS[mine]}) imports {imported} (floor {FLOORS[theirs]})")
        elif (mine, theirs) in FORBIDDEN_SIDEWAYS:
            problems.append(f"{module} imports {imported}: they stand side by side and stay independent")
    return problems


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (module -> modules it imports): its strongly connected
    components of more than one module, and modules importing themselves (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_a_module_imports_only_its_floor_and_below(module: str, path: Path) -> None:
    assert floor_violations(module, _imports(path)) == []


def test_the_ground_floor_and_plugins_never_import_the_runner() -> None:
    offenders = [m for m, p in _modules() if FLOORS[_package(m)] < 4 and any(i.startswith("harness.run") for i in _imports(p))]
    assert offenders == []


def test_no_module_imports_itself_back() -> None:
    graph = {module: {i for i in _imports(path) if i in MODULES and i != module} for module, path in _modules()}
    assert import_cycles(graph) == []


def test_the_checks_fail_on_a_cycle_and_an_upward_import() -> None:
    # the three cycles the runner wing once had, as a synthetic graph
    graph = {"harness.run.bench": {"harness.run.executors"}, "harness.run.executors": {"harness.run.bench"},
             "harness.run.config.schema": {"harness.run.config.presets"}, "harness.run.config.presets": {"harness.run.config.schema"},
             "harness.run.plan": set()}
    assert import_cycles(graph) == [["harness.run.bench", "harness.run.executors"],
                                     ["harness.run.config.presets", "harness.run.config.schema"]]
    assert floor_violations("harness.run.executors.ray", {"harness.run.runner"})  # upward
    assert floor_violations("harness.run.executors.ray", {"harness.run.provenance"})  # sideways
    assert floor_violations("harness.run.plan", {"harness.run.identity"})
    assert floor_violations("harness.run.runner", {"harness.run.cells", "harness.run.plan"}) == []
