"""The sem package is self-contained and layered: no import outside sem, no import cycle.

Read from the source with ``ast``, so that imports inside functions count too (a function-level
import hides a cycle from Python's import machinery, not from the design).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from import_graph import find_cycle as _cycle

import alliance.sem

SEM = Path(alliance.sem.__file__).parent
PACKAGE = "alliance.sem"


def _modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SEM.glob("*.py"))}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module an ``import`` anywhere in ``path`` names: (line, dotted name)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = PACKAGE if node.level == 1 else PACKAGE.rsplit(".", node.level - 1)[0]
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            if name == PACKAGE:  # from alliance.sem import x: the submodule x, if it is one
                out += [(node.lineno, f"{PACKAGE}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, name))
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for _, target in _imports(path):
            if target.startswith(PACKAGE + "."):
                dep = target[len(PACKAGE) + 1 :].split(".")[0]
                deps.add(dep if dep in modules else "__init__")
        graph[name] = deps - {name}
    return graph


def test_sem_imports_nothing_outside_sem():
    outside = [
        f"{path.name}:{line}: {target}"
        for path in _modules().values()
        for line, target in _imports(path)
        if (target == "alliance" or target.startswith("alliance."))
        and not (target == PACKAGE or target.startswith(PACKAGE + "."))
    ]
    assert outside == []


def test_sem_has_no_import_cycle():
    graph = _graph()
    assert len(graph) > 10  # the files were read
    assert _cycle(graph) is None


def test_nothing_in_sem_imports_the_package_entry():
    # __init__ re-exports the API: a module importing it would make a cycle through it
    assert [m for m, deps in _graph().items() if "__init__" in deps] == []


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("syntax", "partable"),
        ("partable", "model"),
        ("model", "samplestats"),
        ("samplestats", "estimate"),
        ("estimate", "teststats"),
        ("teststats", "fitmeasures"),
        ("fitmeasures", "output"),
        ("standardize", "validity"),
        ("output", "api"),
    ],
)
def test_layers_point_downwards(low, high):
    """The lower layer never reaches the higher one, directly or not."""
    graph = _graph()
    seen, todo = set(), [low]
    while todo:
        node = todo.pop()
        for dep in graph.get(node, ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    assert high not in seen
