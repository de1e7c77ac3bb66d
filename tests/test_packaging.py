"""The installed package must hold every module of the source tree, not only in editable mode."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = {"engine": "syncline.engine", "server": "syncline.server", "adapters": "syncline.adapters",
             "app": "syncline.app"}


def test_every_source_package_is_listed_for_installation() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    for folder, name in TOP_LEVEL.items():
        assert config["package-dir"][name] == folder
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            package = ".".join((name, *relative.parts))
            assert package in listed, f"{package} ({init.parent}) is not installed by pyproject.toml"


def test_no_generic_top_level_package_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(name.startswith("syncline.") for name in config["packages"])


def test_every_file_of_the_browser_pages_is_package_data() -> None:
    # app/static holds the demo and the API docs page: pip install must ship them (no Node needed).
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["syncline.app"]
    app = ROOT / "app"
    shipped = {path for pattern in patterns for path in app.glob(pattern) if path.is_file()}
    files = {path for path in (app / "static").rglob("*") if path.is_file()}
    assert {app / "static" / "docs" / "index.html", app / "static" / "docs" / "docs.js",
            app / "static" / "demo" / "index.html"} <= files
    assert files - shipped == set(), "files under app/static that the wheel would leave out"


def test_a_plain_install_pulls_no_cluster_driver_and_no_benchmark_reference() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(spec) for spec in project["dependencies"]}
    assert not names & {"asyncpg", "redis", "pycrdt-websocket", "pycrdt-store", "sqlite-anyio"}, names
    extras = project["optional-dependencies"]
    assert {_name(spec) for spec in extras["cluster"]} == {"asyncpg", "redis"}
    assert "pycrdt-websocket" in {_name(spec) for spec in extras["bench"]}
    assert any(spec.startswith("syncline[cluster]") for spec in extras["dev"])  # the cluster tests need them
    assert "MIT" in project["license"]["text"] and (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_only_the_benchmark_reference_server_imports_pycrdt_websocket() -> None:
    importers = {path.relative_to(ROOT).as_posix()
                 for folder in ("engine", "server", "adapters", "app", "benchmarks", "harness")
                 for path in (ROOT / folder).rglob("*.py")
                 if re.search(r"^\s*(from|import) pycrdt[._]websocket", path.read_text(), re.MULTILINE)}
    assert importers == {"benchmarks/servers/pycrdt_ws.py"}


def _name(spec: str) -> str:
    return spec.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
