"""The import rules of the floors, checked from the source text (parsed with ``ast``, never imported).

Imports point down: engine <- server <- adapters <- app. The engine imports nothing of the
project outside itself, the Python client nothing of the relay, the relay (store and fan-out
included) nothing of the adapters, benchmarks nothing of the tests, and no modules import each
other in a cycle at module level. The composition root (``app/``, ``syncline.app``) is the one
package that may import from every floor, and no floor below it imports it: only the tests,
the harness and the benchmarks do.

A layer rule counts every import, wherever it is written (inside a function or under
``if TYPE_CHECKING:`` too: the dependency is there all the same); the cycle rule counts only
the imports that run when a module is first imported.

Each rule is also run against a small planted tree, so every test here can fail.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "engine": "syncline.engine",
    "server": "syncline.server",
    "adapters": "syncline.adapters",
    "app": "syncline.app",
    "benchmarks": "benchmarks",
    "harness": "harness",
    "tests": "tests",
}
"""Source folder -> the module name it imports as (pyproject.toml's ``package-dir`` for the first four)."""
PROJECT = ("syncline", "benchmarks", "harness", "tests")
"""Top-level names of the project's own modules; every other import is a third party's."""


@dataclass(frozen=True)
class Import:
    """One project module imported by another: ``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: str
    line: int
    module_level: bool
    """False inside a function or a lambda, or under ``if TYPE_CHECKING:``."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target}"


@dataclass(frozen=True)
class Tree:
    modules: frozenset[str]
    imports: tuple[Import, ...]


def module_name(root: Path, path: Path) -> str:
    relative = path.relative_to(root)
    parts = list(relative.with_suffix("").parts)
    parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


ImportNode = ast.Import | ast.ImportFrom


def _import_nodes(nodes: Iterable[ast.AST], module_level: bool = True) -> Iterator[tuple[ImportNode, bool]]:
    """Every import statement in ``nodes``, with whether it runs when the module is imported."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, module_level
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _import_nodes(ast.iter_child_nodes(node), False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.body, False)
            yield from _import_nodes(node.orelse, module_level)
        else:
            yield from _import_nodes(ast.iter_child_nodes(node), module_level)


def _resolve(name: str, modules: frozenset[str]) -> str:
    """The module ``name`` names: itself if known, else its longest known parent, else the name as written."""
    candidate = name
    while candidate:
        if candidate in modules:
            return candidate
        candidate = candidate.rpartition(".")[0]
    return name


def _targets(node: ImportNode, source: str, is_package: bool, modules: frozenset[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [_resolve(alias.name, modules) for alias in node.names]
    if node.level:
        package = source if is_package else source.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    # ``from package import name`` imports the submodule ``package.name`` when there is one.
    return [
        f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else _resolve(base, modules)
        for alias in node.names
    ]


def scan(root: Path) -> Tree:
    """Parse every module of the project's source folders under ``root``."""
    files = {
        path: module_name(root, path)
        for folder in FOLDERS
        if (root / folder).is_dir()
        for path in sorted((root / folder).rglob("*.py"))
        if "__pycache__" not in path.parts and "node_modules" not in path.parts
    }
    modules = frozenset(files.values())
    imports = []
    for path, source in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, module_level in _import_nodes([tree]):
            for target in _targets(node, source, path.name == "__init__.py", modules):
                if target.split(".")[0] in PROJECT and target != source:
                    where = str(path.relative_to(root))
                    imports.append(Import(source, target, where, node.lineno, module_level))
    return Tree(modules, tuple(imports))


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


# -- the rules: each returns what breaks it ---------------------------------------------------


def engine_reaching_out(tree: Tree) -> list[Import]:
    return [
        i for i in tree.imports
        if _within(i.source, "syncline.engine") and not _within(i.target, "syncline.engine")
    ]


def client_reaching_the_relay(tree: Tree) -> list[Import]:
    return [
        i for i in tree.imports
        if _within(i.source, "syncline.adapters.client") and _within(i.target, "syncline.server")
    ]


def store_or_fanout_reaching_adapters(tree: Tree) -> list[Import]:
    return [
        i for i in tree.imports
        if (_within(i.source, "syncline.server.store") or _within(i.source, "syncline.server.fanout"))
        and _within(i.target, "syncline.adapters")
    ]


def relay_reaching_adapters(tree: Tree) -> list[Import]:
    return [
        i for i in tree.imports
        if _within(i.source, "syncline.server") and _within(i.target, "syncline.adapters")
    ]


ABOVE_THE_ROOT = ("syncline.app", "tests", "harness", "benchmarks")
"""What may import the composition root: itself, and what tests, probes or measures the whole."""


def root_imported_from_below(tree: Tree) -> list[Import]:
    """Imports of ``syncline.app`` by the engine, the relay or the adapters."""
    return [
        i for i in tree.imports
        if _within(i.target, "syncline.app") and not any(_within(i.source, top) for top in ABOVE_THE_ROOT)
    ]


def benchmarks_reaching_tests(tree: Tree) -> list[Import]:
    """Benchmarks and the harness they share with the tests never import the tests."""
    return [i for i in tree.imports
            if (_within(i.source, "benchmarks") or _within(i.source, "harness")) and _within(i.target, "tests")]


def harness_reaching_benchmarks(tree: Tree) -> list[Import]:
    return [i for i in tree.imports if _within(i.source, "harness") and _within(i.target, "benchmarks")]


def module_level_cycles(tree: Tree) -> list[list[str]]:
    """Strongly connected groups of two or more modules over the imports run at import time."""
    edges: dict[str, set[str]] = {}
    for i in tree.imports:
        if i.module_level:
            edges.setdefault(i.source, set()).add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the import graph is shallow enough to recurse
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def _show(found: Iterable[object]) -> str:
    return "\n".join(str(item) for item in found)


@pytest.fixture(scope="module")
def project() -> Tree:
    return scan(ROOT)


# -- the project keeps them ---------------------------------------------------------------------


def test_the_scan_sees_every_floor_of_the_project(project: Tree) -> None:
    for module in ("syncline.engine.protocol", "syncline.server.room", "syncline.adapters.client.client",
                   "syncline.app.cli", "benchmarks.relay", "tests.conftest"):
        assert module in project.modules
    edges = {(i.source, i.target) for i in project.imports}
    assert ("syncline.server.room", "syncline.engine.protocol") in edges


def test_the_composition_root_wires_the_relay_and_the_adapters(project: Tree) -> None:
    reached = {floor for i in project.imports if _within(i.source, "syncline.app")
               for floor in ("syncline.server", "syncline.adapters") if _within(i.target, floor)}
    assert reached == {"syncline.server", "syncline.adapters"}


def test_the_engine_imports_nothing_of_the_project_outside_the_engine(project: Tree) -> None:
    assert not (found := engine_reaching_out(project)), _show(found)


def test_the_python_client_imports_nothing_of_the_relay(project: Tree) -> None:
    assert not (found := client_reaching_the_relay(project)), _show(found)


def test_the_store_and_the_fanout_import_nothing_of_the_adapters(project: Tree) -> None:
    assert not (found := store_or_fanout_reaching_adapters(project)), _show(found)


def test_the_relay_imports_nothing_of_the_adapters(project: Tree) -> None:
    assert not (found := relay_reaching_adapters(project)), _show(found)


def test_only_the_tests_harness_and_benchmarks_import_the_composition_root(project: Tree) -> None:
    assert not (found := root_imported_from_below(project)), _show(found)


def test_benchmarks_and_the_harness_import_nothing_of_the_tests(project: Tree) -> None:
    assert not (found := benchmarks_reaching_tests(project)), _show(found)


def test_the_harness_imports_nothing_of_the_benchmarks(project: Tree) -> None:
    assert not (found := harness_reaching_benchmarks(project)), _show(found)


def test_no_modules_import_each_other_in_a_cycle_at_module_level(project: Tree) -> None:
    assert not (found := module_level_cycles(project)), _show(found)


# -- each rule catches a planted breach ------------------------------------------------------------

TYPE_CHECKED = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    "
PLANTED: dict[str, tuple[Callable[[Tree], list[Any]], dict[str, str]]] = {
    "engine": (engine_reaching_out, {"engine/cart.py": "from syncline.server import room\n"}),
    "engine, relatively": (
        engine_reaching_out, {"engine/cart.py": "def f():\n    from ..server import room\n"}
    ),
    "engine, type-checking only": (
        engine_reaching_out, {"engine/cart.py": TYPE_CHECKED + "import syncline.adapters.rest\n"}
    ),
    "client": (
        client_reaching_the_relay,
        {"adapters/client/client.py": "from syncline.server.names import DocName\n"},
    ),
    "store": (
        store_or_fanout_reaching_adapters, {"server/store/sqlite.py": "from ...adapters.rest import feed\n"}
    ),
    "fanout": (store_or_fanout_reaching_adapters, {"server/fanout/redis.py": "import syncline.adapters\n"}),
    "relay": (relay_reaching_adapters, {"server/endpoints.py": "from syncline.adapters import rest\n"}),
    "root, from the relay": (
        root_imported_from_below, {"server/rooms.py": "from syncline.app import asgi\n"}
    ),
    "root, from an adapter": (
        root_imported_from_below, {"adapters/rest/feed.py": "def f():\n    from ...app import cli\n"}
    ),
    "root, from the engine": (root_imported_from_below, {"engine/cart.py": "import syncline.app\n"}),
    "benchmarks": (benchmarks_reaching_tests, {"benchmarks/relay.py": "from tests.server import ypeer\n"}),
    "harness, to the tests": (
        benchmarks_reaching_tests, {"harness/ypeer.py": "from tests.rest import helpers\n"},
    ),
    "harness, to the benchmarks": (
        harness_reaching_benchmarks, {"harness/probes.py": "import benchmarks.common\n"},
    ),
    "cycle": (
        module_level_cycles,
        {"engine/stock.py": "from .conflicts import Conflict\n",
         "engine/conflicts.py": "from . import stock\n"},
    ),
}
"""Each rule, and a breach of it planted in an otherwise clean tree."""

CLEAN = {
    "engine/__init__.py": "",
    "engine/cart.py": "from .errors import CartClosed\n",
    "engine/errors.py": "",
    "engine/stock.py": "from .conflicts import Conflict\n",
    "engine/conflicts.py": "",
    "server/__init__.py": "",
    "server/room.py": "from syncline.engine import cart\n",
    "server/rooms.py": "from . import room\n",
    "server/endpoints.py": "from .rooms import RoomManager\n",
    "server/store/__init__.py": "",
    "server/store/sqlite.py": "",
    "server/fanout/__init__.py": "",
    "server/fanout/redis.py": "",
    "adapters/__init__.py": "",
    "adapters/rest/__init__.py": "",
    "adapters/rest/feed.py": "",
    "adapters/client/__init__.py": "",
    "adapters/client/client.py": "from syncline.engine.cart import Cart\n",
    "app/__init__.py": "",
    "app/asgi.py": "from syncline.adapters.rest import feed\nfrom syncline.server import endpoints\n",
    "app/cli.py": "from syncline.engine import cart\nfrom . import asgi\n",
    "benchmarks/__init__.py": "",
    "benchmarks/relay.py": "import syncline.server.room\n",
    "tests/__init__.py": "",
    "tests/server/__init__.py": "",
    "tests/server/ypeer.py": "from syncline.app import asgi\n",
}
"""A tree that keeps every rule."""


def _plant(root: Path, files: dict[str, str]) -> None:
    for name, text in {**CLEAN, **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_each_rule_catches_a_planted_breach_and_passes_a_clean_tree(tmp_path: Path, case: str) -> None:
    rule, breach = PLANTED[case]
    _plant(tmp_path / "clean", {})
    assert rule(scan(tmp_path / "clean")) == []
    _plant(tmp_path / "broken", breach)
    assert rule(scan(tmp_path / "broken")) != []


def test_imports_inside_functions_or_under_type_checking_do_not_make_a_cycle(tmp_path: Path) -> None:
    _plant(tmp_path, {
        "engine/conflicts.py": TYPE_CHECKED + "from .stock import Ledger\n",
        "engine/cart.py": "def f():\n    from . import stock\n",
        "engine/stock.py": "from .conflicts import Conflict\nfrom .cart import Cart\n",
    })
    assert module_level_cycles(scan(tmp_path)) == []
