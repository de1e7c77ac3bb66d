from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.server.relay_process import RelayProcess


@pytest.fixture
def relay_factory(tmp_path: Path) -> Iterator[Callable[..., RelayProcess]]:
    """Start relays with extra flags: ``relay_factory("--max-rooms", "2")`` (stopped at teardown)."""
    started: list[RelayProcess] = []

    def start(*flags: str, name: str = "relay") -> RelayProcess:
        process = RelayProcess(tmp_path / name, list(flags)).start()
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()
