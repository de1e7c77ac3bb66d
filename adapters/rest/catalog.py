"""The price catalog: loading a tenant's prices into the store from a JSON or CSV file.

JSON: ``{"currency": "EUR", "prices": {"sku-1": 1299, "sku-2": 450}}``; a product may
instead map to ``{"unit_price": 1299, "currency": "USD"}``.
CSV: a header ``product,unit_price`` and optionally ``currency``, one product a row.
Prices are integers in minor units (cents); currencies are ISO 4217 codes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from syncline.engine.errors import ValidationError
from syncline.engine.validation import check_id
from syncline.server.store import Price

MAX_UNIT_PRICE = 10**12
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)


class CatalogError(ValueError):
    """A catalog file that cannot be loaded; nothing of it is stored."""


def read_catalog(path: Path) -> dict[str, Price]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from exc
    if path.suffix.lower() == ".csv":
        return parse_csv(text)
    return parse_json(text)


def parse_json(text: str) -> dict[str, Price]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"currency", "prices"} or not isinstance(data.get("prices"), dict):
        raise CatalogError('expected {"currency": "EUR", "prices": {"product": unit_price, ...}}')
    default = data.get("currency")
    prices: dict[str, Price] = {}
    for product, entry in data["prices"].items():
        if isinstance(entry, dict):
            if set(entry) - {"unit_price", "currency"}:
                raise CatalogError(f"{product!r}: only unit_price and currency are allowed")
            prices[_product(product)] = _price(product, entry.get("unit_price"), entry.get("currency", default))
        else:
            prices[_product(product)] = _price(product, entry, default)
    return prices


def parse_csv(text: str) -> dict[str, Price]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"product", "unit_price"} <= set(reader.fieldnames):
        raise CatalogError("the CSV header must name product and unit_price (and optionally currency)")
    prices: dict[str, Price] = {}
    for number, row in enumerate(reader, start=2):
        raw = (row.get("unit_price") or "").strip()
        if not raw.isascii() or not raw.isdigit():
            raise CatalogError(f"line {number}: unit_price must be a whole number of minor units, not {raw!r}")
        product = row.get("product") or ""
        if product in prices:
            raise CatalogError(f"line {number}: {product!r} appears twice")
        prices[_product(product)] = _price(product, int(raw), (row.get("currency") or "").strip() or None)
    return prices


def _product(product: Any) -> str:
    try:
        return check_id(product, "product")
    except ValidationError as exc:
        raise CatalogError(f"product {str(product)[:64]!r}: {exc.reason}") from None


def _price(product: str, unit_price: Any, currency: Any) -> Price:
    if isinstance(unit_price, bool) or not isinstance(unit_price, int) or not 0 <= unit_price <= MAX_UNIT_PRICE:
        raise CatalogError(f"{product!r}: unit_price must be an integer from 0 to {MAX_UNIT_PRICE} (minor units)")
    if not isinstance(currency, str) or _CURRENCY.fullmatch(currency) is None:
        raise CatalogError(f"{product!r}: currency must be a three-letter ISO 4217 code such as EUR")
    return Price(unit_price, currency)
