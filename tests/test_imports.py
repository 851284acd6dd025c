"""lpn_core's import graph: no cycles (lazy imports inside functions included), and no Qt, app or train."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "lpn_core"


def core_imports(path: Path) -> set[str]:
    """lpn_core modules that ``path`` imports anywhere in the file (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lpn_core."):
            found.add(node.module.split(".")[1])
    return found


def external_imports(path: Path) -> set[str]:
    """Top-level package names of absolute imports anywhere in ``path``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_lpn_core_has_no_import_cycle() -> None:
    graph = {path.stem: core_imports(path) - {path.stem} for path in CORE.glob("*.py")}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle in lpn_core: {' -> '.join(err.args[1])}")


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_lpn_core_never_imports_qt_app_or_train(path: Path) -> None:
    assert not external_imports(path) & {"PyQt6", "PySide6", "app", "train"}
