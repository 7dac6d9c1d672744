"""emorec's modules import one way: no cycle, counting imports inside functions, and an import inside
a function only where it defers TensorFlow or another heavy library, with its reason beside it."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "emorec"
HEAVY = {"tensorflow", "keras", "mtcnn", "talos", "scipy"}  # each takes a second or more to import


def imports(path) -> list[tuple[str, bool, int]]:
    """(module imported, inside a function, line) for every import statement of a module."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                names = ([f"{child.module}.{alias.name}" for alias in child.names] if child.module == "emorec"
                         else [child.module])
                found.extend((name, in_function, child.lineno) for name in names)
            visit(child, inside)

    visit(tree, False)
    return found


MODULES = {path.stem: path for path in PACKAGE.glob("*.py")}


def emorec_module(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "emorec" and len(parts) > 1 and parts[1] in MODULES else None


def graph(inside_functions: bool = True) -> dict[str, set[str]]:
    return {module: {target for name, in_function, _ in imports(path)
                     if (target := emorec_module(name)) and (inside_functions or not in_function)}
            for module, path in MODULES.items()}


def test_no_import_cycle_among_emorec_modules():
    try:
        order = list(TopologicalSorter(graph()).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")
    assert order.index("config") < order.index("registry") < order.index("workflows") < order.index("cli")


def loads_heavy(module: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether importing ``module`` imports a heavy library (directly or through emorec modules)."""
    for name, in_function, _ in imports(MODULES[module]):
        if in_function:
            continue
        if name.split(".")[0] in HEAVY:
            return True
        target = emorec_module(name)
        if target and target not in seen and loads_heavy(target, seen | {module}):
            return True
    return False


def test_imports_inside_functions_defer_a_heavy_library_and_say_so():
    wrong = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for name, in_function, line in imports(path):
            if not in_function:
                continue
            target = emorec_module(name)
            heavy = name.split(".")[0] in HEAVY or (target is not None and loads_heavy(target))
            if not heavy:
                wrong.append(f"emorec/{module}.py:{line} imports {name} inside a function: nothing heavy to defer")
            elif "deferred" not in lines[line - 1] and "deferred" not in lines[line - 2]:
                wrong.append(f"emorec/{module}.py:{line} defers {name} without saying why (# deferred: ...)")
    assert not wrong, "\n".join(wrong)


def test_the_edges_and_the_card_store_load_no_tensorflow():
    """What the pages list and read (cards, scores, tables) must not wait for TensorFlow."""
    for module in ("config", "files", "images", "faces", "data", "crops", "metrics", "calibration", "cards",
                   "registry", "predict", "cross_dataset", "tune_results"):
        assert not loads_heavy(module), module
