"""Fixtures for the REST adapter's tests: the relay app in this process with a loaded price catalog.

``rest_relay`` (one per test) and ``module_relay`` (one per module, each test on its own
document ids) are :class:`~tests.rest.inprocess.InProcessRelay`s; ``rest_relay_process`` is a
real ``syncline serve`` subprocess for the tests about the process itself (signals, SIGKILL,
restarts of the process). Catalogs are written through the store, not the CLI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.catalog import CATALOG, load_catalog
from harness.relay_process import RelayProcess
from tests.rest.inprocess import InProcessRelay
TENANTS = ("acme", "globex")

__all__ = ["CATALOG", "load_catalog"]


def catalogued(data_dir: Path) -> Path:
    """``data_dir`` with :data:`CATALOG` loaded for tenants ``acme`` and ``globex``."""
    for tenant in TENANTS:
        load_catalog(data_dir, tenant, CATALOG)
    return data_dir


@pytest.fixture
def rest_relay(tmp_path: Path) -> Iterator[InProcessRelay]:
    """A relay app whose tenants ``acme`` and ``globex`` have :data:`CATALOG` loaded."""
    relay = InProcessRelay(catalogued(tmp_path / "relay")).start()
    try:
        yield relay
    finally:
        relay.stop()


@pytest.fixture
def rest_relay_process(tmp_path: Path) -> Iterator[RelayProcess]:
    """Like :func:`rest_relay`, but a real relay subprocess: for signals, kills and restarts."""
    process = RelayProcess(catalogued(tmp_path / "relay")).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def api(rest_relay: InProcessRelay) -> Iterator[httpx.Client]:
    """An HTTP client for tenant ``acme`` with a read-write token for all its documents."""
    with rest_relay.client(rest_relay.token("acme")) as client:
        yield client


@pytest.fixture(scope="module")
def module_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessRelay]:
    """Like :func:`rest_relay`, shared by a module's tests (each uses its own document ids)."""
    relay = InProcessRelay(catalogued(tmp_path_factory.mktemp("rest") / "relay")).start()
    try:
        yield relay
    finally:
        relay.stop()


@pytest.fixture(scope="module")
def module_api(module_relay: InProcessRelay) -> Iterator[httpx.Client]:
    """An HTTP client for tenant ``acme`` on :func:`module_relay`, with a read-write token."""
    with module_relay.client(module_relay.token("acme")) as client:
        yield client
