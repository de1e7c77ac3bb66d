"""Assertions and probes shared by the REST tests: problem bodies, store snapshots, ids."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from typing import Any
from urllib.parse import unquote

import anyio
import httpx

from syncline.adapters.rest.problems import TITLES
from harness.relay_process import RelayProcess
from tests.rest.inprocess import InProcessRelay

AnyRelay = InProcessRelay | RelayProcess

PROBLEM_BASE = "https://syncline.dev/problems/"


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The response is the RFC 9457 problem ``slug`` with ``status``; return its body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug, body
    assert body["status"] == status
    assert body["title"] == TITLES[slug][1]
    # The path the server saw (Starlette re-quotes some characters, a backslash for one).
    assert response.request.url.path in (body["instance"], unquote(body["instance"])), body["instance"]
    return body


def store_state(relay: AnyRelay) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a write can leave in the store: log rows, snapshots, feed rows, kept responses."""
    path = relay.data_dir / "syncline.sqlite3"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {
            "updates": db.execute("SELECT seq, doc, blob FROM updates ORDER BY seq").fetchall(),
            "snapshots": db.execute("SELECT doc, seq, blob FROM snapshots ORDER BY doc").fetchall(),
            "changes": db.execute("SELECT seq, doc, action FROM changes ORDER BY seq").fetchall(),
            "responses": db.execute("SELECT tenant, key, fingerprint FROM responses ORDER BY tenant, key").fetchall(),
        }


def new_id(prefix: str) -> str:
    """A document id no other test uses (tests share one relay per module)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def client(relay: AnyRelay, token: str | None) -> httpx.Client:
    """A client of ``relay`` with ``token``: through the app itself for one in this process."""
    if isinstance(relay, InProcessRelay):
        return relay.client(token)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=relay.http_url, headers=headers, timeout=10.0)


def is_in_use(response: httpx.Response) -> bool:
    """Whether ``response`` is the 409 of a key whose first request is still running (checked whole)."""
    if response.status_code != 409:
        return False
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEM_BASE + "idempotency-key-in-use", response.text
    assert response.headers["retry-after"] == "1"
    return True


async def fire_at_once(nodes: list[AnyRelay] | list[RelayProcess], token: str, path: str,
                       requests: list[tuple[int, str, dict[str, Any]]]) -> list[httpx.Response]:
    """POST every ``(node index, Idempotency-Key, body)`` request to ``path`` at once, over
    connections opened beforehand so that they leave together; the responses in that order."""
    results: list[httpx.Response | None] = [None] * len(requests)
    go = anyio.Event()
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=len(requests))
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30, limits=limits) as http:

        async def one(i: int, node: int, key: str, body: dict[str, Any]) -> None:
            await go.wait()
            results[i] = await http.post(nodes[node].http_url + path, json=body, headers={"Idempotency-Key": key})

        async with anyio.create_task_group() as warm:
            for node, _, _ in requests:
                warm.start_soon(http.get, nodes[node].http_url + "/v1/health")
        async with anyio.create_task_group() as tg:
            for i, (node, key, body) in enumerate(requests):
                tg.start_soon(one, i, node, key, body)
            go.set()
    assert all(response is not None for response in results)
    return [response for response in results if response is not None]
