from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .relay_process import RelayProcess


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite runs on asyncio


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    """A fresh relay subprocess on its own data directory."""
    process = RelayProcess(tmp_path / "relay").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def relay_factory(tmp_path: Path) -> Iterator[type[RelayProcess]]:
    """Start relays with extra flags: ``relay_factory(flags=[...])`` (stopped at teardown)."""
    started: list[RelayProcess] = []

    def start(*flags: str, name: str = "relay") -> RelayProcess:
        process = RelayProcess(tmp_path / name, list(flags)).start()
        started.append(process)
        return process

    try:
        yield start  # type: ignore[misc]
    finally:
        for process in started:
            process.stop()
