"""Imports go downward only (minddrive.layers.LAYERS), with no cycle between top-level packages.

Every ``import`` / ``from ... import`` in the package is checked, those inside functions and relative ones
included. Imports made from strings at run time (the CLI's verb table, registry locations, config keys naming
a class) are not import statements and are not seen here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from minddrive.layers import LAYERS, PACKAGE, layer_of, unit_of

PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path) -> list[tuple[str, int]]:
    """(imported ``minddrive`` module, line) of every import statement in ``path``, at any depth."""
    module = module_name(path, root)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from minddrive import sim`` imports the package ``minddrive.sim``: judge by the names too.
            found += [(target, node.lineno)] if target != PACKAGE else \
                [(f"{PACKAGE}.{alias.name}", node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name == PACKAGE or name.startswith(PACKAGE + ".")]


def import_edges(root: Path) -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every ``minddrive`` import under ``root/minddrive``."""
    return [(module_name(path, root), target, line)
            for path in sorted((root / PACKAGE).rglob("*.py"))
            for target, line in imports_of(path, root)]


def upward_imports(root: Path) -> list[str]:
    problems = []
    for source, target, line in import_edges(root):
        if layer_of(target) > layer_of(source):
            problems.append(f"{source}:{line} imports {target} "
                            f"({LAYERS[layer_of(source)][0]} -> {LAYERS[layer_of(target)][0]})")
    return problems


def unit_cycles(root: Path) -> list[list[str]]:
    """Cycles in the graph of top-level units (an edge per import between two different units)."""
    graph: dict[str, set[str]] = {}
    for source, target, _ in import_edges(root):
        a, b = unit_of(source), unit_of(target)
        if a != b:
            graph.setdefault(a, set()).add(b)
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_every_top_level_module_belongs_to_a_layer():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE_DIR.iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    listed = {u for _, layer_units in LAYERS for u in layer_units}
    assert units - listed == set(), "add them to minddrive.layers.LAYERS"
    assert listed - units == set(), "minddrive.layers.LAYERS names modules that do not exist"


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports(PACKAGE_DIR.parent) == []


def test_no_import_cycle_between_top_level_packages():
    assert unit_cycles(PACKAGE_DIR.parent) == []


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    for parent in path.relative_to(root).parents:
        if str(parent) != "." and not (root / parent / "__init__.py").exists():
            (root / parent / "__init__.py").write_text("")


def test_the_checker_flags_upward_imports_inside_functions_and_relative_ones(tmp_path):
    _write(tmp_path, "minddrive/constants.py", "X = 1\n")
    _write(tmp_path, "minddrive/sim/env.py", "from minddrive.constants import X\n\n\n"
                                              "def late():\n    from minddrive.rl.rewards import build_reward\n")
    _write(tmp_path, "minddrive/sim/vqa.py", "from ..data import prompts\nfrom . import env\n")
    _write(tmp_path, "minddrive/data/prompts.py", "from minddrive import sim\n")
    _write(tmp_path, "minddrive/rl/rewards.py", "import minddrive.eval.scoring\n")
    _write(tmp_path, "minddrive/eval/scoring.py", "def f():\n    import minddrive.rl.rewards\n")
    problems = upward_imports(tmp_path)
    assert problems == ["minddrive.sim.env:5 imports minddrive.rl.rewards (sim -> apps)",
                        "minddrive.sim.vqa:1 imports minddrive.data (sim -> data)"]
    assert unit_cycles(tmp_path) == [["data", "sim", "data"], ["rl", "eval", "rl"]]


def test_layer_of_names_unknown_modules():
    assert layer_of("minddrive") == 0 and layer_of("minddrive.rollout.driver") == 4
    with pytest.raises(KeyError, match="belongs to no layer"):
        layer_of("minddrive.nowhere")
