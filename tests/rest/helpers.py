"""Assertions and probes shared by the REST tests: problem bodies, store snapshots, ids."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from typing import Any
from urllib.parse import unquote

import httpx

from syncline.adapters.rest.problems import TITLES
from tests.server.relay_process import RelayProcess

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


def store_state(relay: RelayProcess) -> dict[str, list[tuple[Any, ...]]]:
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


def client(relay: RelayProcess, token: str | None) -> httpx.Client:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=relay.http_url, headers=headers, timeout=10.0)
