"""Stock endpoints: levels, the paged audit trail, adjustments, counts, offline batches, conflicts.

Adjustments and counts are idempotent by their id (the engine's rule): posting the same
one again answers ``200`` with ``"created": false``; the same id with another body is a
``409``. An offline batch applies its operations in order, answers one result per
operation, and stores everything it applied as one update.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from syncline.engine import Adjustment, Conflict, Count, LedgerView, Resolution, StockLedger
from syncline.engine.errors import EngineError
from syncline.engine.entries import STRATEGIES
from syncline.engine.validation import MAX_DELTA, check_delta, check_id, check_int, check_note, check_timestamp
from syncline.engine.names import DocName

from . import bodies
from .bodies import Fields
from .context import Idempotency, Reply, RestContext
from .etags import if_match_allows, ledger_etag, not_modified
from .problems import Problem, engine_problem, validation_problem

log = logging.getLogger("syncline.rest")

MAX_PAGE = 500
DEFAULT_PAGE = 100


def conflict_json(conflict: Conflict) -> dict[str, Any]:
    return {"id": conflict.id, "kind": conflict.kind, "sku": conflict.sku, "level": conflict.level,
            "adjustments": list(conflict.adjustments), "counts": [c.to_json() for c in conflict.counts]}


_ENTRY_TYPES = {Adjustment: "adjustment", Count: "count", Resolution: "resolution"}


def entry_json(entry: Adjustment | Count | Resolution) -> dict[str, Any]:
    return {"type": _ENTRY_TYPES[type(entry)], **entry.to_json()}


def _read(request: Request) -> tuple[RestContext, DocName]:
    ctx: RestContext = request.app.state.rest
    return ctx, ctx.document(request, "stock", "location_id", write=False)


async def _view(ctx: RestContext, name: DocName) -> LedgerView:
    room = await ctx.documents.open(name)
    return ctx.documents.ledger(room, name.doc_id).view()


def _tagged(request: Request, view: LedgerView, body: dict[str, Any]) -> Response:
    tag = ledger_etag(view)
    return not_modified(request, tag) or Reply(200, body, {"ETag": tag}).response()


async def get_levels(request: Request) -> Response:
    ctx, name = _read(request)
    view = await _view(ctx, name)
    return _tagged(request, view, {"location": name.doc_id, "levels": dict(view.levels),
                                   "open_conflicts": len(view.conflicts)})


async def get_level(request: Request) -> Response:
    ctx, name = _read(request)
    sku = _sku_param(request)
    view = await _view(ctx, name)
    return _tagged(request, view, {"location": name.doc_id, "sku": sku, "level": view.levels.get(sku, 0)})


async def get_history(request: Request) -> Response:
    """The audit trail in its order (time, adjustments before counts before decisions, id), a page at a time.

    The cursor names the last entry served, not a position: an entry that syncs in
    later with an earlier time does not shift the pages (the change feed tells of it).
    """
    ctx, name = _read(request)
    params = request.query_params
    _only_params(request, {"sku", "limit", "cursor"})
    sku = None if params.get("sku") is None else _check_param("sku", params["sku"], check_id)
    limit = _limit(params.get("limit"))
    after = _decode_cursor(params.get("cursor"))
    view = await _view(ctx, name)
    entries: list[Adjustment | Count | Resolution] = [*view.adjustments, *view.counts, *view.resolutions]
    if sku is not None:
        entries = [entry for entry in entries if entry.sku == sku]
    keyed = sorted((_order(entry), entry) for entry in entries)
    if after is not None:
        keyed = [(key, entry) for key, entry in keyed if key > after]
    page = keyed[:limit]
    next_cursor = _encode_cursor(page[-1][0]) if len(keyed) > limit else None
    return _tagged(request, view, {"location": name.doc_id, "entries": [entry_json(e) for _, e in page],
                                   "next_cursor": next_cursor})


async def get_conflicts(request: Request) -> Response:
    ctx, name = _read(request)
    view = await _view(ctx, name)
    return _tagged(request, view, {"location": name.doc_id,
                                   "conflicts": [conflict_json(c) for c in view.conflicts]})


# -- writes ---------------------------------------------------------------------------


def _adjustment_fields(fields: Fields, with_type: bool = False) -> dict[str, Any]:
    if with_type:
        fields.raw("type")
    values = {
        "adjustment_id": fields.required("id", check_id),
        "sku": fields.required("sku", check_id),
        "delta": fields.required("delta", lambda v, f: check_delta(bodies.integer(v, f), f)),
        "reason": fields.required("reason", check_id),
        "actor": fields.required("actor", check_id),
        "at": fields.optional("at", lambda v, f: check_timestamp(bodies.integer(v, f), f), None),
        "ref": fields.optional("ref", check_id, None),
    }
    fields.done()
    return values


def _count_fields(fields: Fields, with_type: bool = False) -> dict[str, Any]:
    if with_type:
        fields.raw("type")
    values = {
        "count_id": fields.required("id", check_id),
        "sku": fields.required("sku", check_id),
        "counted": fields.required("counted", lambda v, f: check_int(bodies.integer(v, f), f, 0, MAX_DELTA)),
        "actor": fields.required("actor", check_id),
        "at": fields.optional("at", lambda v, f: check_timestamp(bodies.integer(v, f), f), None),
        "ref": fields.optional("ref", check_id, None),
    }
    fields.done()
    return values


def _resolution_fields(fields: Fields, *, conflict: str | None, with_type: bool = False) -> dict[str, Any]:
    if with_type:
        fields.raw("type")
    values = {
        "conflict_id": conflict if conflict is not None else fields.required("conflict", check_id),
        "strategy": fields.required("strategy", bodies.one_of(*STRATEGIES)),
        "actor": fields.required("actor", check_id),
        "note": fields.optional("note", lambda v, f: check_note(bodies.string(v, f), f), None),
        "level": fields.optional("level", lambda v, f: check_int(bodies.integer(v, f), f, 0, MAX_DELTA), None),
        "at": fields.optional("at", lambda v, f: check_timestamp(bodies.integer(v, f), f), None),
    }
    resolution_id = fields.required("id", check_id) if with_type else fields.optional("id", check_id, None)
    values["resolution_id"] = resolution_id
    fields.done()
    if values["strategy"] == "merge" and values["level"] is None:
        raise validation_problem(fields.name("level"), "the merge strategy needs the level to adopt")
    if values["strategy"] != "merge" and values["level"] is not None:
        raise validation_problem(fields.name("level"), "only the merge strategy takes a level")
    return values


async def _ledger_write(request: Request, name: DocName, body: dict[str, Any], action: str, apply: Any) -> Response:
    ctx: RestContext = request.app.state.rest

    async def perform(idem: Idempotency) -> Reply:
        room = await ctx.documents.open(name)
        async with ctx.documents.editing(room) as (edit,):
            if_match = request.headers.get("if-match")
            if if_match is not None:  # the current view is derived only when asked for
                current = ledger_etag(ctx.documents.ledger(room, name.doc_id).view())
                if not if_match_allows(if_match, current):
                    raise Problem("precondition-failed", headers={"ETag": current})
            ledger = edit.ledger(name.doc_id)
            status, reply_body = apply(ledger)
            reply = Reply(status, reply_body, {"ETag": ledger_etag(ledger.view())})
            seq = await edit.commit(action=action, receipt=idem.record(reply))
            idem.kept = seq is not None and idem.key is not None
            return reply

    return await ctx.write(request, name.tenant, body, perform)


async def post_adjustment(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    name = ctx.document(request, "stock", "location_id", write=True)
    body = await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes)
    values = _adjustment_fields(Fields(body))

    def apply(ledger: StockLedger) -> tuple[int, dict[str, Any]]:
        known = _has_adjustment(ledger, values["adjustment_id"])
        adjustment = ledger.record(**values)
        return (200 if known else 201), {"adjustment": adjustment.to_json(), "created": not known,
                                         "level": ledger.level(adjustment.sku)}

    return await _ledger_write(request, name, body, "stock.adjust", apply)


async def post_count(request: Request) -> Response:
    """Record a stocktake count: what the counter observed, against the level this relay shows."""
    ctx: RestContext = request.app.state.rest
    name = ctx.document(request, "stock", "location_id", write=True)
    body = await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes)
    values = _count_fields(Fields(body))

    def apply(ledger: StockLedger) -> tuple[int, dict[str, Any]]:
        known = _has_count(ledger, values["count_id"])
        count = ledger.count(**values)
        return (200 if known else 201), {
            "count": count.to_json(), "created": not known, "level": ledger.level(count.sku),
            "conflicts": [conflict_json(c) for c in ledger.conflicts() if c.sku == count.sku],
        }

    return await _ledger_write(request, name, body, "stock.count", apply)


async def resolve_conflict(request: Request) -> Response:
    ctx: RestContext = request.app.state.rest
    name = ctx.document(request, "stock", "location_id", write=True)
    conflict = _check_param("conflict_id", request.path_params["conflict_id"], check_id)
    body = await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes)
    values = _resolution_fields(Fields(body), conflict=conflict)

    resolved: list[Resolution] = []

    def apply(ledger: StockLedger) -> tuple[int, dict[str, Any]]:
        resolution = ledger.resolve(**values)
        resolved.append(resolution)
        return 200, {"resolution": resolution.to_json(), "level": ledger.level(resolution.sku)}

    response = await _ledger_write(request, name, body, "stock.resolve", apply)
    _log_resolutions(name, resolved[-1:])  # none when the reply was replayed for its Idempotency-Key
    return response


def _log_resolutions(name: DocName, resolutions: list[Resolution]) -> None:
    for resolution in resolutions:
        log.info("stock conflict resolved", extra={"tenant": name.tenant, "location": name.doc_id,
                                                   "conflict": resolution.conflict, "resolution": resolution.id,
                                                   "sku": resolution.sku, "strategy": str(resolution.strategy)})


async def post_batch(request: Request) -> Response:
    """Apply a device's queued offline operations in order: one result per operation."""
    ctx: RestContext = request.app.state.rest
    name = ctx.document(request, "stock", "location_id", write=True)
    body = await bodies.read_json_object(request, ctx.settings.rest_max_body_bytes)
    fields = Fields(body)
    operations = fields.required("operations", bodies.array)
    fields.done()
    limit = ctx.settings.rest_batch_max_operations
    if not 1 <= len(operations) <= limit:
        raise validation_problem("operations", f"must hold 1 to {limit} operations")
    parsed: list[tuple[str, dict[str, Any]] | Problem] = []
    for index, operation in enumerate(operations):
        where = f"operations[{index}]"
        try:
            item = Fields(operation, where)
            kind = item.required("type", bodies.one_of("adjust", "count", "resolve"))
            if kind == "adjust":
                parsed.append(("adjust", _adjustment_fields(item, with_type=True)))
            elif kind == "count":
                parsed.append(("count", _count_fields(item, with_type=True)))
            else:
                parsed.append(("resolve", _resolution_fields(item, conflict=None, with_type=True)))
        except Problem as problem:
            parsed.append(problem)

    resolved: list[Resolution] = []

    def apply(ledger: StockLedger) -> tuple[int, dict[str, Any]]:
        results = []
        resolved.clear()  # of an earlier attempt at this write
        for index, entry in enumerate(parsed):
            if isinstance(entry, Problem):
                results.append({"index": index, "status": "rejected", "problem": entry.body()})
                continue
            kind, values = entry
            try:
                if kind == "adjust":
                    known = _has_adjustment(ledger, values["adjustment_id"])
                    adjustment = ledger.record(**values)
                    results.append({"index": index, "status": "duplicate" if known else "applied",
                                    "adjustment": adjustment.to_json()})
                elif kind == "count":
                    known = _has_count(ledger, values["count_id"])
                    count = ledger.count(**values)
                    results.append({"index": index, "status": "duplicate" if known else "applied",
                                    "count": count.to_json()})
                else:
                    known = _has_resolution(ledger, values["resolution_id"])
                    resolution = ledger.resolve(**values)
                    if not known:
                        resolved.append(resolution)
                    results.append({"index": index, "status": "duplicate" if known else "applied",
                                    "resolution": resolution.to_json()})
            except EngineError as exc:
                problem = engine_problem(exc)
                if problem is None:
                    raise
                results.append({"index": index, "status": "rejected", "problem": problem.body()})
        return 200, {"location": name.doc_id, "results": results, "levels": dict(ledger.levels())}

    response = await _ledger_write(request, name, body, "stock.batch", apply)
    _log_resolutions(name, resolved)
    return response


def _has_adjustment(ledger: StockLedger, adjustment_id: str) -> bool:
    return any(a.id == adjustment_id for a in ledger.view().adjustments)


def _has_count(ledger: StockLedger, count_id: str) -> bool:
    return any(c.id == count_id for c in ledger.view().counts)


def _has_resolution(ledger: StockLedger, resolution_id: str) -> bool:
    return any(r.id == resolution_id for r in ledger.view().resolutions)


# -- parameters -------------------------------------------------------------------------


def _sku_param(request: Request) -> str:
    return _check_param("sku", request.path_params["sku"], check_id)


def _check_param(name: str, value: str, check: Any) -> Any:
    try:
        return check(value, name)
    except EngineError as exc:
        raise Problem("invalid-parameter", str(exc), parameter=name) from None


def _only_params(request: Request, allowed: set[str]) -> None:
    for key in request.query_params:
        if key not in allowed and key != "token":
            raise Problem("invalid-parameter", f"unknown query parameter {key[:64]!r}", parameter=key[:64])


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= MAX_PAGE:
        raise Problem("invalid-parameter", f"limit must be an integer from 1 to {MAX_PAGE}", parameter="limit")
    return int(raw)


_RANKS = {Adjustment: 0, Count: 1, Resolution: 2}


def _order(entry: Adjustment | Count | Resolution) -> tuple[int, int, str]:
    return (entry.at, _RANKS[type(entry)], entry.id)


def _encode_cursor(key: tuple[int, int, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(raw: str | None) -> tuple[int, int, str] | None:
    if raw is None:
        return None
    try:
        if len(raw) > 1024:
            raise ValueError("too long")
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        at, kind, entry_id = decoded
        if isinstance(at, bool) or not isinstance(at, int) or kind not in (0, 1, 2) or not isinstance(entry_id, str):
            raise ValueError("shape")
        return (at, kind, entry_id)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise Problem("invalid-parameter", "cursor is not one this server gave out", parameter="cursor") from None
