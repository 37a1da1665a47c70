"""Imports go one way (docs/architecture.md): every import in src/ is read with ``ast``,
including those inside functions, and none may reach a layer above its module's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "marrow_triage"

LAYERS = {"errors": 0, "models": 1, "units": 2, "pack": 3, "engine": 4, "timeline": 5,
          "adapters": 6}
"""A module in one of these may import only from its own layer or those below."""

DEPRECATED_SHIMS = {"marrow_triage.cli", "marrow_triage.service", "marrow_triage.fhir"}
"""Old public paths of the adapters: the only modules outside adapters/ that load them."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path) -> set[str]:
    """Every marrow_triage module ``path`` imports, by absolute name (string arguments of
    ``importlib.import_module`` too)."""
    tree = ast.parse(path.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import; write the absolute module name")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return {name for name in found if name.split(".")[0] == "marrow_triage"}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) == 1:
        return max(LAYERS.values())  # the package itself: the public API, above everything
    return LAYERS.get(parts[1])


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_layers_exist() -> None:
    """The test reads real modules: each layer has some, so a move cannot empty it."""
    names = {_module_name(path) for path in MODULES}
    for layer in LAYERS:
        assert any(n == f"marrow_triage.{layer}" or n.startswith(f"marrow_triage.{layer}.")
                   for n in names), layer


@pytest.mark.parametrize("path", MODULES, ids=[_module_name(p) for p in MODULES])
def test_imports_go_down_the_layers(path: Path) -> None:
    module = _module_name(path)
    own = _layer(module) if module != "marrow_triage" else None
    upward = []
    for name in sorted(_imported(path)):
        target = _layer(name)
        if target is None or name == module or name.startswith(module + "."):
            continue
        if own is not None and target > own:
            upward.append(name)
        elif own is None and module not in DEPRECATED_SHIMS and \
                name.split(".")[1:2] == ["adapters"]:
            upward.append(name)  # a core module outside the layers reaching an adapter
    assert not upward, f"{module} imports from a layer above it: {upward}"


def test_only_the_durable_module_calls_durable_rules() -> None:
    callers = set()
    for path in MODULES:
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("durable", "durable_rules_engine") for n in names):
                callers.add(_module_name(path))
    assert callers == {"marrow_triage.engine.durable"}


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The reader sees imports inside functions and by importlib, as a regression would."""
    bad = tmp_path / "bad.py"
    bad.write_text("import importlib\n"
                   "def late():\n"
                   "    from marrow_triage.adapters.cli import main\n"
                   "    importlib.import_module('marrow_triage.timeline.store')\n", "utf-8")
    assert {"marrow_triage.adapters.cli", "marrow_triage.timeline.store"} <= _imported(bad)
