"""The project's floors, as a rule that runs: which package may import which, function-local imports
included, and no import cycle between modules. The README's "Layout" table says the same in words.

    floor 0  schema/                                   imports nothing else of the project
    floor 1  k6_scripts/  analysis/  components/       schema only (siblings do not import each other)
    floor 2  aigw_bench/                               everything below; inside it, from the bottom:
               measure/ -> run/ -> local/ | cloud/ (siblings) -> progress, cli
    top      __main__.py (the Pulumi program)          components and schema
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.pure

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("schema", "k6_scripts", "analysis", "components", "aigw_bench")

# What each room may import besides itself (a room is a package, or a part of aigw_bench).
ALLOWED: dict[str, set[str]] = {
    "schema": set(),
    "k6_scripts": {"schema"},
    "analysis": {"schema"},
    "components": {"schema"},
    "aigw_bench.measure": {"schema", "k6_scripts", "analysis", "aigw_bench.root"},
    "aigw_bench.run": {"schema", "k6_scripts", "analysis", "aigw_bench.root", "aigw_bench.measure"},
    "aigw_bench.local": {"schema", "k6_scripts", "analysis", "aigw_bench.root", "aigw_bench.measure",
                         "aigw_bench.run"},
    "aigw_bench.cloud": {"schema", "k6_scripts", "analysis", "components", "aigw_bench.root", "aigw_bench.measure",
                         "aigw_bench.run"},
    "aigw_bench.progress": {"schema", "k6_scripts", "analysis", "aigw_bench.root", "aigw_bench.measure",
                            "aigw_bench.run"},
    "aigw_bench.cli": {"schema", "k6_scripts", "analysis", "components", "aigw_bench.root", "aigw_bench.measure",
                       "aigw_bench.run", "aigw_bench.local", "aigw_bench.cloud", "aigw_bench.progress"},
    "aigw_bench.root": set(),  # aigw_bench/__init__.py, __main__.py: the version, the entry point
    "__main__": {"schema", "components"},
}


def module_of(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def room(module: str) -> str:
    """The room a module lives in (the key of ALLOWED)."""
    top = module.split(".")[0]
    if module == "__main__":
        return "__main__"
    if top != "aigw_bench":
        return top
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return "aigw_bench.root" if module != "aigw_bench.__main__" else "aigw_bench.cli"
    return f"aigw_bench.{parts[1]}"


def project_files() -> list[Path]:
    files = [REPO / "__main__.py"]
    for package in PACKAGES:
        files += sorted((REPO / package).rglob("*.py"))
    return files


def imports(path: Path, known: set[str]) -> set[str]:
    """Every project module ``path`` imports, at any depth of its code (function-local ones included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            # The longest prefix that is a project module: `from schema.k6 import metric` -> schema.k6.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = project_files()
    known = {module_of(p) for p in files}
    return {module_of(p): imports(p, known) - {module_of(p)} for p in files}


def test_every_import_stays_on_or_below_its_floor():
    wrong = []
    for module, targets in graph().items():
        here = room(module)
        for target in targets:
            there = room(target)
            if there != here and there not in ALLOWED[here]:
                wrong.append(f"{module} imports {target} ({here} may not import {there})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle_between_modules():
    g = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(g):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(("module", "expected"), [
    ("schema.catalog", "schema"), ("analysis.load", "analysis"), ("aigw_bench.cloud.engine", "aigw_bench.cloud"),
    ("aigw_bench.cli", "aigw_bench.cli"), ("aigw_bench", "aigw_bench.root"), ("__main__", "__main__"),
])
def test_rooms_are_what_the_table_says(module, expected):
    assert room(module) == expected


def test_the_rule_sees_a_function_local_import_above_its_floor(tmp_path):
    """The rule must catch what it exists for: an import hidden in a function body."""
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    from aigw_bench.cli import main\n    return main\n")
    known = {module_of(p) for p in project_files()}
    assert imports(sneaky, known) == {"aigw_bench.cli"}
    assert "aigw_bench.cli" not in ALLOWED[room("analysis.load")]
