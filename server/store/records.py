"""A receipt as a row, the same in every backend: the store keeps the record's bytes as they are."""

from __future__ import annotations

from typing import Any

from .base import Receipt


def receipt_row(receipt: Receipt) -> tuple[Any, ...]:
    return (receipt.tenant, receipt.key, receipt.fingerprint, receipt.record, receipt.created_at)


def receipt_from_row(tenant: str, key: str, fingerprint: str, record: bytes, created_at: float) -> Receipt:
    return Receipt(tenant, key, fingerprint, bytes(record), float(created_at))
