"""The package's import graph keeps its layers: stages on top, the library below, sem apart.

Read from the source with ``ast``, so that imports inside functions count too (a function-level
import hides a cycle or a layer breach from Python's import machinery, not from the design).
The rules, stated in each package's docstring:

- the library never imports a stage (a module the workflow's scripts or the CLI call);
- statistics never draw: only stages, the ``plots`` modules and :mod:`alliance.figures` import
  matplotlib or seaborn, or a module that draws;
- ``alliance.sem`` imports nothing outside ``alliance.sem``;
- nothing imports ``snakemake``;
- no two modules import each other, directly or through others.

Importing ``alliance.pkg.mod`` runs ``alliance/pkg/__init__.py`` first, so an import from
outside a package counts as an import of the package's ``__init__`` too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from import_graph import find_cycle

import alliance

ROOT = Path(alliance.__file__).parent

#: The stage entries: what the workflow's scripts and the CLI call. They may import anything.
STAGES = frozenset(
    {
        "alliance.cli",
        "alliance.provenance",
        "alliance.verify",
        "alliance.data.ingest",
        "alliance.data.pool",
        "alliance.describe.stage",
        "alliance.cfa.stage",
        "alliance.cfa.longinv",
        "alliance.cfa.twolevel",
        "alliance.bayes.api",
        "alliance.bayes.bsem_stage",
        "alliance.bayes.sensitivity",
        "alliance.process",
        "alliance.process.bayes_api",
        "alliance.panel.stage",
        "alliance.irt.stage",
        "alliance.meta.effects",
        "alliance.meta.stage",
        "alliance.meta.masem_stage",
        "alliance.meta.ipd_stage",
        "alliance.report.summary",
        "alliance.simulate.demo",
        "alliance.simulate.sites",
    }
)
#: Third-party packages that draw.
DRAWING_LIBRARIES = ("matplotlib", "seaborn")
#: Packages whose docstring states the rule (every folder of the package).
PACKAGES = sorted(
    "alliance." + ".".join(p.parent.relative_to(ROOT).parts)
    for p in ROOT.rglob("__init__.py")
    if p.parent != ROOT
)


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    return {_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path, known: set[str]) -> list[tuple[int, str]]:
    """Every module an ``import`` anywhere in ``path`` names: (line, dotted name).

    ``from pkg import name`` names the submodule ``pkg.name`` where that is a module, else
    ``pkg``; relative imports are resolved. Imports under ``if TYPE_CHECKING:`` never run and
    are left out.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = {id(n) for top in ast.walk(tree) if _is_type_checking(top) for n in ast.walk(top)}
    package = ""  # a file outside the package has no relative imports
    if path.resolve().is_relative_to(ROOT.resolve()):
        package = _name(path) if path.name == "__init__.py" else _name(path).rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            out += [(node.lineno, s) for s in subs]
            if len(subs) < len(node.names):
                out.append((node.lineno, target))
    return out


def _runs(importer: str, target: str, known: set[str]) -> list[str]:
    """The modules of the package that importing ``target`` from ``importer`` runs.

    ``target`` itself (or the package module it is inside of) and the ``__init__`` of every
    package above it that ``importer`` is not itself inside of.
    """
    parts = target.split(".")
    while parts and ".".join(parts) not in known:
        parts.pop()  # an attribute path: alliance.x.y.name
    if not parts:
        return []
    hit = [".".join(parts)]
    for k in range(2, len(parts)):
        parent = ".".join(parts[:k])
        if not (importer == parent or importer.startswith(parent + ".")):
            hit.append(parent)
    return hit


def graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[int, str, str]]]]:
    """The direct import graph of the package, and every import with what it runs.

    Returns ``(direct, runs)``: ``direct[a]`` the modules ``a`` names in an import,
    ``runs[a]`` a ``(line, named, module run)`` row for each module of the package, and each
    third-party top-level package, that an import of ``a`` runs.
    """
    mods = modules()
    known = set(mods)
    direct: dict[str, set[str]] = {}
    runs: dict[str, list[tuple[int, str, str]]] = {}
    for name, path in mods.items():
        direct[name] = set()
        runs[name] = []
        for line, target in imports(path, known):
            if target == "alliance" or target.startswith("alliance."):
                hit = _runs(name, target, known)
                if hit and hit[0] != name:
                    direct[name].add(hit[0])
                runs[name] += [(line, target, h) for h in hit if h != name]
            else:
                runs[name].append((line, target, target.split(".")[0]))
    return direct, runs


def is_stage(module: str) -> bool:
    """A stage entry: one of :data:`STAGES`, or a module of the command line."""
    return module in STAGES or module.startswith("alliance.cli.")


def draws(module: str) -> bool:
    """A module that may draw: a stage, a ``plots`` module or the shared figure style."""
    return is_stage(module) or module == "alliance.figures" or module.endswith(".plots")


def breaches(runs: dict[str, list[tuple[int, str, str]]]) -> list[str]:
    """Every import that breaks a layer rule, as ``module:line: import (rule)``."""
    mods = modules()
    out = []
    for name, rows in sorted(runs.items()):
        where = f"{mods[name].relative_to(ROOT.parent)}"
        for line, named, hit in rows:
            if hit == "snakemake":
                out.append(f"{where}:{line}: {named} (the library never imports snakemake)")
            if not is_stage(name) and is_stage(hit):
                out.append(f"{where}:{line}: {named} runs the stage {hit} (library -> stage)")
            drawing = hit in DRAWING_LIBRARIES or (draws(hit) and not is_stage(hit))
            if drawing and not draws(name):
                out.append(f"{where}:{line}: {named} draws (statistics never draw)")
            if (name == "alliance.sem" or name.startswith("alliance.sem.")) and (
                hit.startswith("alliance.") and not hit.startswith("alliance.sem")
            ):
                out.append(f"{where}:{line}: {named} is outside sem (sem is self-contained)")
    return out


def test_the_stages_named_here_exist():
    assert sorted(STAGES - set(modules())) == []


def test_no_import_breaks_a_layer():
    direct, runs = graph()
    assert len(direct) > 60  # the files were read
    assert breaches(runs) == []


def test_no_import_cycle():
    direct, _ = graph()
    assert find_cycle(direct) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_states_what_it_may_import(package):
    path = modules()[package]
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    assert re.search(r"May import|imports nothing outside", doc), f"{path}: states no import rule"


# --------------------------------------------------------------------------- the checker


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_are_read_inside_functions_and_resolved(tmp_path):
    known = {"alliance.meta", "alliance.meta.pooling", "alliance.figures"}
    source = tmp_path / "x.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import pymc\n"
        "def f():\n    from alliance.meta import pooling, rma\n    import matplotlib.pyplot\n"
    )
    assert sorted(imports(source, known)) == [
        (1, "typing"),
        (5, "alliance.meta"),
        (5, "alliance.meta.pooling"),
        (6, "matplotlib.pyplot"),
    ]


def test_breaches_name_the_offending_import():
    runs = {
        "alliance.meta.pooling": [
            (3, "alliance.meta.stage", "alliance.meta.stage"),
            (4, "matplotlib.pyplot", "matplotlib"),
            (5, "alliance.figures", "alliance.figures"),
        ],
        "alliance.sem.api": [(7, "alliance.tables", "alliance.tables")],
    }
    found = breaches(runs)
    assert found == [
        "alliance/meta/pooling.py:3: alliance.meta.stage runs the stage alliance.meta.stage "
        "(library -> stage)",
        "alliance/meta/pooling.py:4: matplotlib.pyplot draws (statistics never draw)",
        "alliance/meta/pooling.py:5: alliance.figures draws (statistics never draw)",
        "alliance/sem/api.py:7: alliance.tables is outside sem (sem is self-contained)",
    ]


def test_an_import_from_outside_a_package_runs_its_init():
    known = {"alliance.process", "alliance.process.plots", "alliance.bayes.api"}
    assert _runs("alliance.bayes.api", "alliance.process.plots", known) == [
        "alliance.process.plots",
        "alliance.process",
    ]
    assert _runs("alliance.process.bayes_api", "alliance.process.plots", known) == [
        "alliance.process.plots"
    ]
