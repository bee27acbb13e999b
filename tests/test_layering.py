"""The floors of the architecture (docs/benchmark.md, Layout): a module imports only its own floor
and the floors below, so the ground the plugins stand on never imports what stands on it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: floor of a module, by the most specific matching prefix (lowest first)
FLOORS = {
    "harness": 1,  # ground: registry, keys, progress, metrics, stats, data, results, cache, training
    "ciphers": 2,
    "attacks": 2,
    "harness.classifiers": 2,
    "reports": 3,
    "harness.run": 4,  # the runner wing: cli, presets, schema, bench, security cells, executors
    "harness.conformance": 4,  # test suites of the plugins
}
#: plugins stand side by side but attacks and classifiers may use the cipher contract, not each other
FORBIDDEN_SIDEWAYS = {("ciphers", "attacks"), ("ciphers", "harness.classifiers"), ("attacks", "harness.classifiers"),
                      ("harness.classifiers", "attacks")}


def _package(module: str) -> str:
    return max((p for p in FLOORS if module == p or module.startswith(p + ".")), key=len, default="")


def _modules() -> list[tuple[str, Path]]:
    found = []
    for top in ("harness", "ciphers", "attacks", "reports"):
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if _package(n)}


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_a_module_imports_only_its_floor_and_below(module: str, path: Path) -> None:
    mine = _package(module)
    for imported in _imports(path):
        theirs = _package(imported)
        if imported in ("harness.run", "harness.conformance") and mine == "harness":  # the package names only
            continue
        assert FLOORS[theirs] <= FLOORS[mine], f"{module} (floor {FLOORS[mine]}) imports {imported} (floor {FLOORS[theirs]})"
        assert (mine, theirs) not in FORBIDDEN_SIDEWAYS, f"{module} imports {imported}: plugins stay independent"


def test_the_ground_floor_and_plugins_never_import_the_runner() -> None:
    offenders = [m for m, p in _modules() if FLOORS[_package(m)] < 4 and any(i.startswith("harness.run") for i in _imports(p))]
    assert offenders == []
