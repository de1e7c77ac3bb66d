"""The shared harness and the benchmarks stand on their own: neither imports ``tests``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(ROOT).parent.parts
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            names.add(".".join((*base, node.module or "")).strip("."))
    return names


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", ["harness", "benchmarks"])
def test_harness_and_benchmarks_never_import_tests(folder: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(name for name in imported_modules(path)
                                            if name == "tests" or name.startswith("tests."))
        for path in sources(folder)
    }
    assert sources(folder), f"no Python files under {folder}/"
    assert {path: names for path, names in offenders.items() if names} == {}


def test_harness_never_imports_benchmarks() -> None:
    offenders = {str(path.relative_to(ROOT)): sorted(name for name in imported_modules(path)
                                                     if name.split(".")[0] == "benchmarks")
                 for path in sources("harness")}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_harness_is_not_installed_with_the_package() -> None:
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert not any(name.split(".")[0] in {"harness", "benchmarks", "tests"} for name in packages)
