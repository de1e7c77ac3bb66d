"""An outage as the log shows it: a cluster node whose Redis goes away after start-up.
Each failed attempt to reach it again is one plain-text line naming the error, with no
traceback, and the node keeps serving (its fan-out is degraded, not refused)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import httpx
import pytest

from .conftest import Cluster

pytestmark = pytest.mark.anyio


async def _lines_with(log: Path, needle: str, count: int, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in log.read_text().splitlines() if needle in line]
        if len(lines) >= count:
            return lines
        await anyio.sleep(0.05)
    raise AssertionError(f"no {count} lines with {needle!r} in:\n{log.read_text()}")


async def test_a_node_that_loses_redis_logs_each_failed_attempt_in_one_line_with_its_error(
    cluster: Cluster,
) -> None:
    async with anyio.create_task_group() as tg:
        gate, _direct, node = await cluster.gated_pair(tg, "redis")
        gate.close()
        lost = await _lines_with(node.log_path, "WARNING syncline.fanout: ", count=2)
        assert all('error="' in line for line in lost), lost
        async with httpx.AsyncClient(timeout=5) as http:
            ready = await http.get(f"http://127.0.0.1:{node.port}/readyz")
        assert ready.status_code == 200 and ready.json().get("fanout") == "degraded", ready.text
        tg.cancel_scope.cancel()
    text = node.log_path.read_text()
    assert "Traceback" not in text, text
    assert all(line[:4].isdigit() for line in text.splitlines()), text  # each record on one line
