"""The import rules the README's Layout section states, checked on every source file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative ones resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def ours(modules, prefix: str) -> set[str]:
    return {m for m in modules if m == prefix or m.startswith(prefix + ".")}


def sources(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


def test_the_rules_see_the_files():
    assert len(sources("layers")) > 10 and len(sources("pipeline/detection")) > 10


@pytest.mark.parametrize("path", sources("layers"), ids=lambda p: p.name)
def test_layers_import_neither_nets_nor_pipeline(path):
    modules = imported_modules(path)
    assert not ours(modules, "nets") | ours(modules, "pipeline"), path


@pytest.mark.parametrize("path", sources("nets"), ids=lambda p: p.name)
def test_nets_never_import_pipeline(path):
    assert not ours(imported_modules(path), "pipeline"), path


@pytest.mark.parametrize("path", sources("pipeline/detection"), ids=lambda p: p.name)
def test_the_algorithm_never_imports_the_speed_machinery(path):
    """Only the runner seam may reach pipeline.fast (to make the fast runner)."""
    allowed = {"pipeline.fast.runner", "pipeline.fast.runner.FastRunner"} if path.name == "runner.py" else set()
    assert ours(imported_modules(path), "pipeline.fast") <= allowed, path
    assert not ours(imported_modules(path), "pipeline.training"), path


@pytest.mark.parametrize("path", sources("pipeline/data"), ids=lambda p: p.name)
def test_data_imports_no_other_part_of_pipeline_but_the_box_convention(path):
    modules = imported_modules(path)
    assert ours(modules, "pipeline") <= ours(modules, "pipeline.data") | ours(modules, "pipeline.detection.boxes"), path
