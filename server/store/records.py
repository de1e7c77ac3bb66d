"""The stored form of an idempotent response, the same in every backend (msgpack, per DESIGN)."""

from __future__ import annotations

from typing import Any

import msgpack

from .base import StoredResponse


def response_row(response: StoredResponse) -> tuple[Any, ...]:
    record = msgpack.packb(
        {"status": response.status, "body": response.body, "headers": [list(h) for h in response.headers]}
    )
    return (response.tenant, response.key, response.fingerprint, record, response.created_at)


def response_from_row(tenant: str, key: str, fingerprint: str, record: bytes, created_at: float) -> StoredResponse:
    fields_ = msgpack.unpackb(record)
    return StoredResponse(
        tenant, key, fingerprint, int(fields_["status"]), bytes(fields_["body"]),
        tuple((str(name), str(value)) for name, value in fields_["headers"]), float(created_at),
    )
