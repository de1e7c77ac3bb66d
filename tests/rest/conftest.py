"""Fixtures for the REST adapter's tests: a real relay subprocess with a loaded price catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.catalog import CATALOG, load_catalog
from harness.relay_process import RelayProcess


@pytest.fixture
def rest_relay(tmp_path: Path) -> Iterator[RelayProcess]:
    """A relay whose tenants ``acme`` and ``globex`` have :data:`CATALOG` loaded."""
    data_dir = tmp_path / "relay"
    for tenant in ("acme", "globex"):
        load_catalog(data_dir, tenant, CATALOG)
    process = RelayProcess(data_dir).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def api(rest_relay: RelayProcess) -> Iterator[httpx.Client]:
    """An HTTP client for tenant ``acme`` with a read-write token for all its documents."""
    token = rest_relay.token("acme")
    with httpx.Client(base_url=rest_relay.http_url, headers={"Authorization": f"Bearer {token}"},
                      timeout=10.0) as client:
        yield client


@pytest.fixture(scope="module")
def module_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """Like :func:`rest_relay`, shared by a module's tests (each uses its own document ids)."""
    data_dir = tmp_path_factory.mktemp("rest") / "relay"
    for tenant in ("acme", "globex"):
        load_catalog(data_dir, tenant, CATALOG)
    process = RelayProcess(data_dir).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def module_api(module_relay: RelayProcess) -> Iterator[httpx.Client]:
    """An HTTP client for tenant ``acme`` on :func:`module_relay`, with a read-write token."""
    token = module_relay.token("acme")
    with httpx.Client(base_url=module_relay.http_url, headers={"Authorization": f"Bearer {token}"},
                      timeout=10.0) as client:
        yield client
