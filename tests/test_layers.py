"""The package's layers, read from its source: imports only go down, never from inside a function, and no module
outgrows one idea (DESIGN.md's layout; the rules of the re-layering issue)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monai_vqvae2"
GROUND = {"io", "slice_io", "provenance", "moved", "bundle"}
#: what each unit (a subpackage or a top-level module) may import of the package, besides itself
ALLOWED = {
    "io": set(),
    "moved": set(),
    "bundle": set(),
    "slice_io": {"io"},
    "provenance": {"io"},
    "networks": set(),
    "losses": {"networks"},
    "metrics": {"networks"},
    "transforms": GROUND,
    "data": GROUND | {"networks", "transforms"},
    "engines": GROUND | {"networks", "losses", "metrics", "transforms", "data"},
    "inferers": GROUND | {"networks", "metrics", "transforms", "data"},
    "synthetic": GROUND | {"networks", "metrics", "transforms", "data", "engines", "inferers"},
    "quality": GROUND | {"networks", "metrics", "transforms", "data", "engines", "inferers"},
    "quality_measures": {"quality"},  # the former module path of the quality measures
    "apps": GROUND | {"transforms", "data"},
    "pipeline": GROUND | {"networks"},
    "demo": GROUND | {"apps", "pipeline"},
    "__init__": GROUND,
}
MAX_LINES = 600


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found.append((parts[0] if len(parts) > 1 or parts[0] != "__init__" else "__init__", path))
    return found


def imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module] if node.module and node.level == 0 else []
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return []


def test_every_unit_is_in_the_layer_table():
    assert {unit for unit, _ in modules()} == set(ALLOWED)


@pytest.mark.parametrize("unit, path", modules(), ids=lambda value: str(value).rsplit("monai_vqvae2/", 1)[-1])
def test_imports_go_down_the_layers_and_never_from_inside_a_function(unit, path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        for name in imported(node):
            if name.startswith("monai_vqvae2."):
                target = name.split(".")[1]
                assert target == unit or target in ALLOWED[unit], f"{path.name}: {unit} imports {name}"
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for inner in ast.walk(node):
                ours = [name for name in imported(inner) if name.startswith("monai_vqvae2")]
                assert not ours, f"{path.name}:{inner.lineno}: {node.name} imports {ours} (use monai_vqvae2.moved)"


@pytest.mark.parametrize("unit, path", modules(), ids=lambda value: str(value).rsplit("monai_vqvae2/", 1)[-1])
def test_no_module_is_longer_than_one_idea_needs(unit, path):
    assert len(path.read_text().splitlines()) <= MAX_LINES, path.name
