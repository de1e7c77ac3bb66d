"""The OpenAPI 3.1 document of the REST adapter, served at ``/v1/openapi.json``.

Written by hand next to the handlers it describes; ``tests/rest/test_openapi.py``
checks that every route is described and schemathesis checks the server against it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from syncline.engine.changes import FEED_EVENT_TYPES, FEED_TYPE_FILTERS
from syncline.engine.names import KINDS, PART_PATTERN
from syncline.engine.order import PAYMENTS, STAGES

from .problems import PROBLEM_BASE, TITLES

ID = {"type": "string", "minLength": 1, "maxLength": 128}
PART = {"type": "string", "pattern": f"^{PART_PATTERN}$", "minLength": 1, "maxLength": 128}
INT = {"type": "integer"}
NULLABLE_INT = {"type": ["integer", "null"]}
ATTRIBUTES = {"type": "object", "description": "JSON object, at most 32 keys, nested at most 4 deep"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, *, closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    if closed:
        schema["additionalProperties"] = False
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
    "Problem": _obj({
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": _obj({"field": {"type": "string"}, "reason": {"type": "string"}})},
    }, ["type", "title", "status"], closed=False),
    "CartLine": _obj({
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "product": {"type": "string"},
        "attributes": {"type": "object"},
        "quantity": {"type": "integer", "minimum": 1},
        "unit_price": NULLABLE_INT,
        "line_total": NULLABLE_INT,
    }),
    "Cart": _obj({
        "tenant": {"type": "string"},
        "id": {"type": "string"},
        "status": {"enum": ["open", "merged", "checked_out", "abandoned"],
                   "description": "abandoned: open, but without an edit or a connected peer for --cart-idle-seconds"},
        "merged_into": {"type": ["string", "null"], "description": "merged: the cart it was merged into"},
        "merged_at": NULLABLE_INT,
        "order": {"type": ["string", "null"], "description": "checked_out: the id of the order it became"},
        "checked_out_at": NULLABLE_INT,
        "currency": {"type": ["string", "null"]},
        "lines": {"type": "array", "items": _ref("CartLine")},
        "total_quantity": {"type": "integer", "minimum": 0},
        "total": NULLABLE_INT,
        "issues": {"type": "array", "items": {"type": "string"}},
        "last_accessed_at": {**NULLABLE_INT, "description": "epoch milliseconds of the cart's last edit or "
                             "connected peer (reads do not count), to the minute; null if unknown. Not covered "
                             "by the ETag, nor is the abandoned status"},
    }, ["tenant", "id", "status", "merged_into", "merged_at", "order", "checked_out_at", "currency", "lines",
        "total_quantity", "total", "issues"]),
    "NewGuestSession": _obj({
        "cookie": {"type": "boolean", "default": False,
                   "description": "true: the token comes as the HTTP-only syncline_guest cookie, not in the body"},
    }, []),
    "GuestSession": _obj({
        "tenant": {"type": "string"},
        "cart": {"type": "string", "description": "the guest cart's id"},
        "token": {"type": ["string", "null"],
                  "description": "a token for this cart alone (read and write); null when sent as the cookie"},
        "cookie": {"type": "boolean"},
        "expires_at": {**INT, "description": "epoch milliseconds when the token (and the cookie) expire"},
    }),
    "AddItem": _obj({
        "product": ID,
        "quantity": {"type": "integer", "minimum": 1, "maximum": 100_000, "default": 1},
        "attributes": ATTRIBUTES,
    }, ["product"]),
    "SetQuantity": _obj({"quantity": {"type": "integer", "minimum": 0, "maximum": 100_000}}),
    "Empty": _obj({}, []),
    "MergeRequest": _obj({"into": {**PART, "description": "the cart to merge into (document id rules)"}}),
    "MergeResult": _obj({
        "merge": _obj({
            "source": {"type": "string"},
            "target": {"type": "string"},
            "replayed": {"type": "boolean"},
            "lines": {"type": "array", "items": _obj({
                "id": {"type": "string"}, "product": {"type": "string"},
                "attributes": {"type": "object"}, "quantity": {"type": "integer"},
            })},
        }),
        "cart": _ref("Cart"),
    }),
    "Adjustment": _obj({
        "id": {"type": "string"}, "sku": {"type": "string"}, "delta": INT, "reason": {"type": "string"},
        "actor": {"type": "string"}, "at": INT, "ref": {"type": "string"},
    }, ["id", "sku", "delta", "reason", "actor", "at"]),
    "Resolution": _obj({
        "id": {"type": "string"}, "conflict": {"type": "string"}, "sku": {"type": "string"},
        "strategy": {"enum": ["accept", "compensate", "merge"]}, "actor": {"type": "string"}, "at": INT,
        "note": {"type": "string"}, "level": INT, "adjustment": {"type": "string"},
    }, ["id", "conflict", "sku", "strategy", "actor", "at"]),
    "NewAdjustment": _obj({
        "id": ID, "sku": ID,
        "delta": {"type": "integer", "minimum": -1_000_000_000, "maximum": 1_000_000_000, "not": {"const": 0}},
        "reason": ID, "actor": ID,
        "at": {"type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991,
               "description": "epoch milliseconds; default: now"},
        "ref": ID,
    }, ["id", "sku", "delta", "reason", "actor"]),
    "Count": _obj({
        "id": {"type": "string"}, "sku": {"type": "string"}, "counted": INT,
        "seen": {**INT, "description": "the level the counter's replica showed when counting"},
        "base": {**INT, "description": "the sum of the sku's adjustments the counter's replica held"},
        "after": {"type": "array", "items": {"type": "string"},
                  "description": "the counts of this sku the counter had seen that no other count it had seen supersedes"},
        "actor": {"type": "string"}, "at": INT, "ref": {"type": "string"},
    }, ["id", "sku", "counted", "seen", "base", "after", "actor", "at"]),
    "NewCount": _obj({
        "id": ID, "sku": ID,
        "counted": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000,
                    "description": "the units counted on the shelf"},
        "actor": ID,
        "at": {"type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991,
               "description": "epoch milliseconds; default: now"},
        "ref": ID,
    }, ["id", "sku", "counted", "actor"]),
    "NewResolution": _obj({
        "strategy": {"enum": ["accept", "compensate", "merge"]},
        "actor": ID,
        "note": {"type": "string", "maxLength": 2000},
        "level": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000,
                  "description": "the level to adopt; merge only, and required there"},
        "at": {"type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991},
        "id": ID,
    }, ["strategy", "actor"]),
    "AdjustmentResult": _obj({"adjustment": _ref("Adjustment"), "created": {"type": "boolean"}, "level": INT}),
    "CountResult": _obj({
        "count": _ref("Count"), "created": {"type": "boolean"}, "level": INT,
        "conflicts": {"type": "array", "items": _ref("Conflict"), "description": "open conflicts of the sku"},
    }),
    "ResolutionResult": _obj({"resolution": _ref("Resolution"), "level": INT}),
    "Levels": _obj({"location": {"type": "string"}, "levels": {"type": "object",
                    "additionalProperties": {"type": "integer"}}, "open_conflicts": {"type": "integer"}}),
    "Level": _obj({"location": {"type": "string"}, "sku": {"type": "string"}, "level": INT}),
    "History": _obj({
        "location": {"type": "string"},
        "entries": {"type": "array", "items": {"type": "object", "required": ["type", "id", "sku", "at"]}},
        "next_cursor": {"type": ["string", "null"]},
    }),
    "Conflict": _obj({
        "id": {"type": "string"}, "kind": {"enum": ["negative_level", "count_mismatch"]}, "sku": {"type": "string"},
        "level": INT, "adjustments": {"type": "array", "items": {"type": "string"}},
        "counts": {"type": "array", "items": _ref("Count"), "description": "count_mismatch: the concurrent counts"},
    }),
    "OrderLine": _obj({"id": {"type": "string"}, "product": {"type": "string"}, "attributes": {"type": "object"},
                       "quantity": {"type": "integer"}, "unit_price": {"type": "integer"},
                       "line_total": {"type": "integer"}}),
    "Move": _obj({"id": {"type": "string"}, "kind": {"enum": ["stage", "payment"]}, "from": {"type": "string"},
                  "to": {"type": "string"}, "at": {"type": "integer"}, "by": {"type": "string"},
                  "note": {"type": ["string", "null"]}, "effective": {"type": "boolean"}}),
    "Order": _obj({
        "tenant": {"type": "string"}, "id": {"type": "string"}, "cart": {"type": "string"},
        "location": {"type": "string"}, "currency": {"type": "string"},
        "lines": {"type": "array", "items": _ref("OrderLine")}, "total": {"type": "integer"},
        "stage": {"enum": list(STAGES)}, "payment": {"enum": list(PAYMENTS)},
        "placed_at": {"type": "integer"}, "placed_by": {"type": "string"},
        "trail": {"type": "array", "items": _ref("Move")},
        "issues": {"type": "array", "items": {"type": "object"}},
    }),
    "OrderSummary": _obj({
        "id": {"type": "string"}, "cart": {"type": "string"}, "location": {"type": "string"},
        "currency": {"type": "string"}, "total": {"type": "integer"}, "stage": {"enum": list(STAGES)},
        "payment": {"enum": list(PAYMENTS)}, "placed_at": {"type": "integer"}, "lines": {"type": "integer"},
    }),
    "Orders": _obj({"tenant": {"type": "string"}, "orders": {"type": "array", "items": _ref("OrderSummary")},
                    "next_cursor": {"type": ["string", "null"]}}),
    "StageMove": _obj({"stage": {"enum": list(STAGES)}, "actor": ID, "note": {"type": "string", "maxLength": 1024},
                       "at": {"type": "integer", "minimum": 0}}, ["stage", "actor"]),
    "PaymentMove": _obj({"status": {"enum": list(PAYMENTS)}, "actor": ID,
                         "note": {"type": "string", "maxLength": 1024}, "at": {"type": "integer", "minimum": 0}},
                        ["status", "actor"]),
    "Cancel": _obj({"actor": ID, "note": {"type": "string", "maxLength": 1024},
                    "at": {"type": "integer", "minimum": 0}}, ["actor"]),
    "Checkout": _obj({"location": PART, "order": PART, "actor": ID}, ["location", "actor"]),
    "CheckoutResult": _obj({"order": _ref("Order"), "cart": _ref("Cart"), "replayed": {"type": "boolean"}}),
    "Conflicts": _obj({"location": {"type": "string"}, "conflicts": {"type": "array", "items": _ref("Conflict")}}),
    # Items are not constrained here: an invalid one (even a non-object) gets a "rejected" result
    # at its index and the others are still applied, as an offline queue needs.
    "Batch": _obj({"operations": {"type": "array", "minItems": 1, "items": {"description":
        "{type: adjust, ...NewAdjustment}, {type: count, ...NewCount} or {type: resolve, id, conflict, "
        "...NewResolution}; anything "
        "else is answered by a rejected result for its index"}}}),
    "BatchResult": _obj({
        "location": {"type": "string"},
        "results": {"type": "array", "items": _obj({
            "index": {"type": "integer"},
            "status": {"enum": ["applied", "duplicate", "rejected"]},
            "adjustment": _ref("Adjustment"),
            "count": _ref("Count"),
            "resolution": _ref("Resolution"),
            "problem": _ref("Problem"),
        }, ["index", "status"])},
        "levels": {"type": "object", "additionalProperties": {"type": "integer"}},
    }),
    "KindActivity": _obj({
        "rooms": INT, "peers": INT, "hello_peers": INT, "awareness_clients": INT, "online_users": INT,
    }),
    "SyncState": _obj({
        "tenant": {"type": "string"},
        "server_time": INT,
        "node": {"type": "string"},
        "locations": {"type": "array", "items": _obj({
            "location": {"type": "string"},
            "last_change_at": {**NULLABLE_INT, "description": "the latest `at` of the ledger's entries (epoch ms)"},
            "open_conflicts": INT,
            "conflict_ids": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
            "peers": INT,
        })},
        "next_cursor": {"type": ["string", "null"]},
        "kinds": {"type": "object", "properties": {kind: _ref("KindActivity") for kind in KINDS},
                  "required": list(KINDS), "additionalProperties": False},
        "online_users": INT,
    }),
    "Broadcast": _obj({
        "message": {"description": "any JSON value but null or a blank string; at most 2048 bytes as JSON, "
                                   "integers within ±(2^53-1)"},
        "type": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", "default": "message"},
    }, ["message"]),
    "BroadcastSent": _obj({
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "type": {"type": "string"}, "at": INT,
        "peers": {**INT, "description": "WebSocket peers of this node it was queued for"},
    }),
    "Ping": _obj({"sent_at": {"type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991,
                              "description": "the client's clock when it sent the request (epoch ms)"}}, []),
    "Pong": _obj({
        "sent_at": NULLABLE_INT, "received_at": INT, "server_time": INT,
        "store_rtt_ms": {"type": "number"}, "node": {"type": "string"},
    }),
    "Health": _obj({"status": {"const": "ok"}}),
    "Catalog": _obj({"tenant": {"type": "string"}, "prices": {"type": "object", "additionalProperties": _obj({
        "unit_price": {"type": "integer", "minimum": 0}, "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}})}}),
}


def _param(name: str, schema: dict[str, Any], where: str = "path", description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "required": where == "path", "schema": schema}
    if description:
        param["description"] = description
    return param


TENANT_P = _param("tenant", PART)
CART_P = _param("cart_id", PART)
LOCATION_P = _param("location_id", PART)
ORDER_P = _param("order_id", PART)
LINE_P = _param("line_id", {"type": "string", "pattern": "^[0-9a-f]{32}$"})
IDEMPOTENCY_P = _param("Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 255}, "header",
                       "a retry with the same key returns the first response; another body is refused (422)")
IF_MATCH_P = _param("If-Match", {"type": "string"}, "header", "the ETag the write is based on (412 if stale)")
IF_NONE_MATCH_P = _param("If-None-Match", {"type": "string"}, "header")
ETAG_H = {"ETag": {"schema": {"type": "string"}, "description": "strong ETag of the document's content"}}
REQUEST_ID_P = _param("X-Request-ID", {"type": "string"}, "header",
                      "an id for this request: kept when it is 1 to 128 visible ASCII characters, echoed in "
                      "the answer and carried by every log line of the request; any other value, or none, "
                      "is replaced by a generated one (never refused)")
REQUEST_ID_H = {"X-Request-ID": {"schema": {"type": "string"},
                                 "description": "the request's id: the one sent, or the one generated for it"}}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


PROBLEM = {"description": "a problem (RFC 9457)", "content": {"application/problem+json": {"schema": _ref("Problem")}}}
RATE_LIMITED = {**PROBLEM, "description": "over the token's or the tenant's request rate (rate-limited); retry "
                "after Retry-After", "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(status): RATE_LIMITED if status == 429 else PROBLEM
            for status in sorted({400, 401, 403, 404, 405, 429, 500, 503, *statuses})}


def _with_request_ids(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation takes an ``X-Request-ID`` and every answer carries one."""
    for item in paths.values():
        for operation in item.values():
            operation["parameters"] = [*operation.get("parameters", []), REQUEST_ID_P]
            operation["responses"] = {
                status: {**response, "headers": {**response.get("headers", {}), **REQUEST_ID_H}}
                for status, response in operation["responses"].items()}
    return paths


def _read_op(summary: str, schema: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [*params, IF_NONE_MATCH_P],
        "responses": {
            "200": _json(_ref(schema), summary, ETAG_H),
            "304": {"description": "not modified (If-None-Match)", "headers": ETAG_H},
            **_problems(),
        },
    }


def _write_op(summary: str, params: list[dict[str, Any]], request: str | None, responses: dict[str, Any],
              *extra_problems: int) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [*params, IDEMPOTENCY_P, IF_MATCH_P],
        "responses": {**responses, **_problems(409, 412, 413, 415, 422, *extra_problems)},
    }
    if request is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(request)}}}
    return operation


def _named(operation_id: str, tag: str, operation: dict[str, Any]) -> dict[str, Any]:
    """``operation`` with its ``operationId`` (unique in the document) and its tag."""
    return {"operationId": operation_id, "tags": [tag], **operation}


TAGS = [
    {"name": "carts", "description": "Shopping carts: lines keyed by product and attributes, priced from the "
                                     "tenant's catalog, merged from a guest cart into a user's; guest sessions."},
    {"name": "stock", "description": "Stock ledgers of one location: adjustments, levels, the audit trail, "
                                     "counts (stocktakes), conflicts (a level below zero, concurrent counts that disagree) and "
                                     "their resolution, offline batches."},
    {"name": "orders", "description": "Orders placed by a cart's checkout: their stage and payment, moved "
                                      "forward by any device; the furthest move wins."},
    {"name": "feed", "description": "The change feed: Server-Sent Events of the tenant's document changes, resumable."},
    {"name": "live", "description": "What is connected and in sync in a tenant, an ephemeral broadcast to its "
                                    "peers and feed readers, and a clock ping."},
    {"name": "service", "description": "Liveness and this description."},
]


@cache
def openapi_document() -> dict[str, Any]:
    cart = [TENANT_P, CART_P]
    location = [TENANT_P, LOCATION_P]
    order = [TENANT_P, ORDER_P]
    order_ok = {"200": _json(_ref("Order"), "the order after the move", ETAG_H)}
    cart_ok = {"200": _json(_ref("Cart"), "the cart after the write", ETAG_H)}
    paths = {
        "/v1/health": {"get": _named("getHealth", "service", {
            "summary": "liveness", "security": [],
            "responses": {"200": _json(_ref("Health"), "the process serves requests")}})},
        "/v1/openapi.json": {"get": _named("getOpenApiDocument", "service", {
            "summary": "this document", "security": [],
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}})},
        "/v1/tenants/{tenant}/carts/{cart_id}": {"get": _named("getCart", "carts", _read_op("read a cart, priced", "Cart", cart))},
        "/v1/tenants/{tenant}/carts/{cart_id}/items": {"post": _named("addCartItem", "carts", _write_op(
            "add an item (the same product and attributes add to the existing line)", cart, "AddItem", cart_ok))},
        "/v1/tenants/{tenant}/carts/{cart_id}/lines/{line_id}": {
            "put": _named("setCartLineQuantity", "carts", _write_op(
                "set a line's quantity (0 removes it)", [*cart, LINE_P], "SetQuantity", cart_ok)),
            "delete": _named("removeCartLine", "carts", _write_op("remove a line", [*cart, LINE_P], None, cart_ok)),
        },
        "/v1/tenants/{tenant}/carts/{cart_id}/clear": {"post": _named("clearCart", "carts", _write_op(
            "remove every line", cart, "Empty", cart_ok))},
        "/v1/tenants/{tenant}/carts/{cart_id}/merge": {"post": _named("mergeCart", "carts", _write_op(
            "merge this guest cart into another cart (idempotent; the guest ends merged)", cart, "MergeRequest",
            {"200": _json(_ref("MergeResult"), "the merge and the target cart", ETAG_H)}))},
        "/v1/tenants/{tenant}/carts/{cart_id}/checkout": {"post": _named("checkoutCart", "carts", _write_op(
            "check the cart out: an order priced by the catalog now, one sale per line at the location, the "
            "cart closed (a retry or replay sells once)", cart, "Checkout", {
                "201": _json(_ref("CheckoutResult"), "the order placed", {**ETAG_H, "Location": {
                    "schema": {"type": "string"}, "description": "the order's address"}}),
                "200": _json(_ref("CheckoutResult"), "already checked out into this order: nothing more written",
                             ETAG_H),
            }))},
        "/v1/tenants/{tenant}/stock/{location_id}/levels": {"get": _named("getStockLevels", "stock", _read_op(
            "levels of every sku", "Levels", location))},
        "/v1/tenants/{tenant}/stock/{location_id}/levels/{sku}": {"get": _named("getStockLevel", "stock", _read_op(
            "level of one sku", "Level", [*location, _param("sku", ID)]))},
        "/v1/tenants/{tenant}/stock/{location_id}/history": {"get": _named("getStockHistory", "stock", _read_op("the audit trail, paged", "History", [
            *location,
            _param("sku", ID, "query"),
            _param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}, "query"),
            _param("cursor", {"type": "string", "maxLength": 1024}, "query", "next_cursor of the previous page"),
        ]))},
        "/v1/tenants/{tenant}/stock/{location_id}/adjustments": {"post": _named("recordStockAdjustment", "stock", _write_op(
            "record an adjustment (idempotent by id)", location, "NewAdjustment", {
                "201": _json(_ref("AdjustmentResult"), "recorded", ETAG_H),
                "200": _json(_ref("AdjustmentResult"), "already recorded with this body", ETAG_H),
            }))},
        "/v1/tenants/{tenant}/stock/{location_id}/counts": {"post": _named("recordStockCount", "stock", _write_op(
            "record a stocktake count: the level counted on the shelf (idempotent by id); adjustments the "
            "count did not see still apply on top, and concurrent counts that disagree open a count_mismatch",
            location, "NewCount", {
                "201": _json(_ref("CountResult"), "recorded", ETAG_H),
                "200": _json(_ref("CountResult"), "already recorded with this body", ETAG_H),
            }))},
        "/v1/tenants/{tenant}/stock/{location_id}/batch": {"post": _named("applyStockBatch", "stock", _write_op(
            "apply queued offline operations in order, one result each", location, "Batch",
            {"200": _json(_ref("BatchResult"), "one result per operation", ETAG_H)}))},
        "/v1/tenants/{tenant}/stock/{location_id}/conflicts": {"get": _named("getStockConflicts", "stock", _read_op(
            "open conflicts", "Conflicts", location))},
        "/v1/tenants/{tenant}/stock/{location_id}/conflicts/{conflict_id}/resolve": {"post": _named("resolveStockConflict", "stock", _write_op(
            "resolve an open conflict (recorded in the audit trail)",
            [*location, _param("conflict_id", ID)], "NewResolution",
            {"200": _json(_ref("ResolutionResult"), "the recorded decision", ETAG_H)}))},
        "/v1/tenants/{tenant}/catalog": {"get": _named("getCatalog", "carts", {
            "summary": "the tenant's price catalog (any token of the tenant)",
            "parameters": [TENANT_P],
            "responses": {"200": _json(_ref("Catalog"), "every product's price, in minor units"), **_problems()},
        })},
        "/v1/tenants/{tenant}/orders": {"get": _named("listOrders", "orders", {
            "summary": "the tenant's orders the token may read, a page at a time, in id order",
            "parameters": [
                TENANT_P,
                _param("stage", {"enum": list(STAGES)}, "query"),
                _param("payment", {"enum": list(PAYMENTS)}, "query"),
                _param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 25}, "query"),
                _param("cursor", {"type": "string", "maxLength": 1024}, "query", "next_cursor of the previous page"),
            ],
            "responses": {"200": _json(_ref("Orders"), "a page of orders"), **_problems()},
        })},
        "/v1/tenants/{tenant}/orders/{order_id}": {"get": _named("getOrder", "orders", _read_op(
            "read an order: its lines, total, stage, payment and trail", "Order", order))},
        "/v1/tenants/{tenant}/orders/{order_id}/stage": {"post": _named("advanceOrderStage", "orders", _write_op(
            "move the order forward to a stage", order, "StageMove", order_ok, 409))},
        "/v1/tenants/{tenant}/orders/{order_id}/payment": {"post": _named("recordOrderPayment", "orders", _write_op(
            "record the payment's new status", order, "PaymentMove", order_ok, 409))},
        "/v1/tenants/{tenant}/orders/{order_id}/cancel": {"post": _named("cancelOrder", "orders", _write_op(
            "cancel the order (refused once it completed)", order, "Cancel", order_ok, 409))},
        "/v1/tenants/{tenant}/live/sync-state": {"get": _named("getLiveSyncState", "live", {
            "summary": "per stock location the last change and open conflicts; per kind what is connected",
            "parameters": [
                TENANT_P,
                _param("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "query",
                       "most locations in the page"),
                _param("cursor", {"type": "string", "maxLength": 1024}, "query", "next_cursor of the previous page"),
            ],
            "responses": {"200": _json(_ref("SyncState"), "the tenant's sync state on this node"), **_problems()},
        })},
        "/v1/tenants/{tenant}/live/broadcast": {"post": _named("broadcastToTenant", "live", {
            "summary": "an ephemeral message to the tenant's connected peers and feed readers (never stored)",
            "parameters": [TENANT_P],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Broadcast")}}},
            "responses": {
                "202": _json(_ref("BroadcastSent"), "sent"),
                **_problems(413, 415, 422),
                "429": {**RATE_LIMITED, "description": "too many broadcasts of this tenant, or requests; retry "
                        "after Retry-After"},
            },
        })},
        "/v1/tenants/{tenant}/live/ping": {"post": _named("pingLive", "live", {
            "summary": "the server's clock and the client's send time echoed: the client measures the round trip",
            "parameters": [TENANT_P],
            "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("Ping")}}},
            "responses": {"200": _json(_ref("Pong"), "the server's times"), **_problems(413, 415, 422)},
        })},
        "/v1/tenants/{tenant}/guest-sessions": {"post": _named("createGuestSession", "carts", {
            "summary": "a new guest cart and a token for it alone, for a tenant named by --guest-tenant (no "
                       "token needed; rate-limited by client address)",
            "security": [],
            "parameters": [TENANT_P],
            "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("NewGuestSession")}}},
            "responses": {
                "201": _json(_ref("GuestSession"), "the session", {
                    "Location": {"schema": {"type": "string"}, "description": "the guest cart's address"},
                    "Set-Cookie": {"schema": {"type": "string"}, "description": "with cookie: true, syncline_guest "
                                   "(HttpOnly; Secure; SameSite=Lax; Path=/v1/; Max-Age=--guest-session-seconds)"},
                }),
                **_problems(413, 415, 422),
            },
        })},
        "/v1/tenants/{tenant}/events": {"get": _named("streamEvents", "feed", {
            "summary": "the tenant's change feed (Server-Sent Events)",
            "description": (
                "Named events. The stream's own: connected (first; its resume position), heartbeat (every "
                "--sse-heartbeat-seconds), reset (re-read your documents), broadcast (an ephemeral message). "
                "Each change gives one or more of " + ", ".join(FEED_EVENT_TYPES) + ", with data {seq, doc, "
                "kind, id, action, at} plus the event's fields (docs/rest.md). The last event of a change has "
                "the id EPOCH-SEQ, the ones before it EPOCH-SEQ.I."
            ),
            "parameters": [
                TENANT_P,
                _param("doc", {"type": "string"}, "query", "kind/id of a document to follow (repeatable)"),
                _param("type", {"enum": list(FEED_TYPE_FILTERS)}, "query",
                       "event type, kind.* or kind.changed for every event of the kind (repeatable)"),
                _param("order", {"type": "string"}, "query",
                       "an order id: its events, its cart's checkout, the stock levels its sales moved (repeatable)"),
                _param("since", {"type": "string",
                                 "pattern": "^([0-9a-f]{16}-[0-9]{1,19}([.][0-9]{1,4})?|[0-9]{1,19})$"}, "query",
                       "resume after this event id (as Last-Event-ID)"),
                _param("Last-Event-ID", {"type": "string"}, "header",
                       "resume after this event id: EPOCH-SEQ or EPOCH-SEQ.I, the id of the last event "
                       "received. An id of another epoch (the store was wiped or restored), a bare SEQ, or "
                       "one this feed never reached gets a reset event first, then every event kept"),
            ],
            "responses": {
                "200": {"description": "an endless event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                **_problems(),
            },
        })},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Syncline REST adapter",
            "version": "1",
            "description": "A REST and SSE view of Syncline's CRDT documents: every write is an edit in the "
            "same room as the WebSocket peers'. Errors are RFC 9457 problems; their types are listed under "
            "x-problem-types.",
        },
        "servers": [{"url": "/"}],
        "tags": TAGS,
        "security": [{"bearer": []}, {"guestCookie": []}],
        "paths": _with_request_ids(paths),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "guestCookie": {"type": "apiKey", "in": "cookie", "name": "syncline_guest",
                                "description": "a guest session's cookie (POST .../guest-sessions with cookie: "
                                               "true); REST and the change feed only"},
            },
        },
        "x-problem-types": {PROBLEM_BASE + slug: {"status": status, "title": title}
                            for slug, (status, title) in TITLES.items()},
    }
