"""Shared test settings.

Hypothesis profiles: ``ci`` (the default) keeps the suite fast; ``deep`` runs
thousands of examples per property. Pick one with ``--hypothesis-profile=deep``
or ``SYNCLINE_HYPOTHESIS_PROFILE=deep``.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from harness.relay_process import RelayProcess

settings.register_profile(
    "ci",
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    # No explain phase: on a failing state machine it can outlast the per-test timeout.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "deep",
    max_examples=3000,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("SYNCLINE_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiosqlite, and with it the relay, runs on asyncio


@pytest.fixture
def no_automatic_collections() -> Iterator[None]:
    """The cyclic garbage collector runs only when the test calls it (after one run that
    clears what earlier tests left)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    """A fresh `syncline serve` subprocess on its own data directory."""
    process = RelayProcess(tmp_path / "relay").start()
    try:
        yield process
    finally:
        process.stop()


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
