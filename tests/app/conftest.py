"""Fixtures for the composition root's tests: relays with and without ``--cors-origin``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.catalog import CATALOG, load_catalog
from tests.rest.inprocess import InProcessRelay

SHOP = "http://127.0.0.1:5173"
"""The origin the CORS tests allow (a storefront's dev server)."""
ELSEWHERE = "http://127.0.0.1:6006"
"""An origin they do not."""


def _relay(data_dir: Path, **settings: object) -> Iterator[InProcessRelay]:
    load_catalog(data_dir, "acme", CATALOG)
    relay = InProcessRelay(data_dir, **settings).start()
    try:
        yield relay
    finally:
        relay.stop()


@pytest.fixture(scope="module")
def cors_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessRelay]:
    """A relay allowing :data:`SHOP` only, served on a real loopback socket."""
    yield from _relay(tmp_path_factory.mktemp("cors"), cors_origin=(SHOP,))


@pytest.fixture(scope="module")
def plain_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessRelay]:
    """A relay with the default settings: CORS off."""
    yield from _relay(tmp_path_factory.mktemp("plain"))
