"""RFC 9457 problem details: every REST error is one of these, with a stable ``type``.

Handlers raise :class:`Problem`; the app turns it into an ``application/problem+json``
response, and the request's access log line names its ``cause`` (the problem type, or the
finer reason given, e.g. ``token_expired``) with its ``detail``. The ``type`` URIs never change once published (clients switch on them);
``title`` is fixed per type, ``detail`` explains this occurrence.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from syncline.server.access import note_cause

PROBLEM_BASE = "https://syncline.dev/problems/"
MEDIA_TYPE = "application/problem+json"

TITLES: dict[str, tuple[int, str]] = {
    "malformed-json": (400, "The request body is not valid JSON"),
    "invalid-document-name": (400, "The tenant or document id in the path breaks the naming rules"),
    "invalid-header": (400, "A request header has an invalid value"),
    "invalid-parameter": (400, "A path or query parameter has an invalid value"),
    "unauthorized": (401, "A valid token is required"),
    "forbidden": (403, "The token does not allow this"),
    "read-only": (403, "The token is read-only"),
    "not-found": (404, "No such resource"),
    "unknown-line": (404, "The cart has no such line"),
    "unknown-conflict": (404, "No open conflict has this id"),
    "unknown-order": (404, "No order with this id was placed"),
    "method-not-allowed": (405, "The method is not allowed on this resource"),
    "not-acceptable": (406, "The resource cannot be served in an acceptable media type"),
    "idempotency-key-in-use": (409, "A request with this Idempotency-Key is still being processed"),
    "cart-closed": (409, "The cart is closed (merged or checked out) and takes no more edits"),
    "already-merged": (409, "The cart was already merged into another cart"),
    "duplicate-adjustment": (409, "An adjustment with this id exists with a different body"),
    "duplicate-count": (409, "A count with this id exists with a different body"),
    "duplicate-resolution": (409, "A resolution with this id exists with a different body"),
    "checkout-in-progress": (409, "Another checkout of this order is still running; retry"),
    "order-exists": (409, "An order with this id was placed from another cart or location"),
    "transition-refused": (409, "The order cannot make this move from where it stands"),
    "precondition-failed": (412, "The document changed since the version given in If-Match"),
    "payload-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "The request body must be application/json"),
    "validation-error": (422, "The request is well-formed JSON but its content is invalid"),
    "unknown-product": (422, "The product has no price in the catalog"),
    "empty-cart": (422, "The cart has no lines to check out"),
    "mixed-currency": (422, "The cart's lines are priced in more than one currency"),
    "idempotency-key-reused": (422, "This Idempotency-Key was used with a different request"),
    "rate-limited": (429, "Too many requests; retry after the time in Retry-After"),
    "store-unavailable": (503, "The store cannot be written right now"),
    "fanout-unavailable": (503, "This cluster node cannot reach the other nodes (Redis); retry, or use another node"),
    "room-limit": (503, "Too many documents are open; retry later"),
    "edit-refused": (503, "The relay refused the edit this time (its replica was reset); retry it"),
    "internal-error": (500, "An unexpected error occurred"),
}


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


class Problem(Exception):
    """An error answered as problem+json; ``extra`` members go into the body as they are.

    ``cause`` is what the log line says instead of the type when it knows more (the
    admission's refusal reason, say); it never reaches the client."""

    def __init__(self, slug: str, detail: str | None = None, *, headers: dict[str, str] | None = None,
                 cause: str | None = None, **extra: Any) -> None:
        if slug not in TITLES:
            raise KeyError(f"unknown problem type {slug!r}")
        self.slug = slug
        self.status, self.title = TITLES[slug]
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra
        self.cause = cause or slug
        super().__init__(f"{slug}: {detail}" if detail else slug)

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": problem_type(self.slug), "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body

    def response(self, instance: str | None = None) -> Response:
        note_cause(self.cause, self.detail)
        return Response(
            json.dumps(self.body(instance), separators=(",", ":")).encode(),
            status_code=self.status,
            media_type=MEDIA_TYPE,
            headers=self.headers,
        )


def validation_problem(field: str, reason: str) -> Problem:
    """A 422 naming the offending field, in the ``errors`` member every validation problem has."""
    return Problem("validation-error", f"{field}: {reason}", errors=[{"field": field, "reason": reason}])


def engine_problem(exc: Exception) -> Problem | None:
    """The problem an engine error answers as, or None for an error that is not the client's."""
    from syncline.engine import errors

    if isinstance(exc, errors.ValidationError):
        return validation_problem(exc.field, exc.reason)
    if isinstance(exc, errors.UnknownLine):
        return Problem("unknown-line", f"no line {exc.line_key}")
    if isinstance(exc, errors.CartClosed):
        if exc.state == "checked_out":
            return Problem("cart-closed", f"checked out into order {exc.order}", state="checked_out", order=exc.order)
        return Problem("cart-closed", f"merged into {exc.merged_into}", state="merged", merged_into=exc.merged_into)
    if isinstance(exc, errors.AlreadyMerged):
        return Problem("already-merged", f"merged into {exc.merged_into}", merged_into=exc.merged_into)
    if isinstance(exc, errors.DuplicateAdjustment):
        return Problem("duplicate-adjustment", f"adjustment {exc.adjustment_id}")
    if isinstance(exc, errors.DuplicateCount):
        return Problem("duplicate-count", f"count {exc.count_id}")
    if isinstance(exc, errors.DuplicateResolution):
        return Problem("duplicate-resolution", f"resolution {exc.resolution_id}")
    if isinstance(exc, errors.UnknownConflict):
        return Problem("unknown-conflict", f"conflict {exc.conflict_id}")
    if isinstance(exc, errors.TransitionRefused):
        return Problem("transition-refused", exc.reason, kind=exc.kind, current=exc.current,
                       requested=exc.requested)
    if isinstance(exc, errors.OrderNotPlaced):
        return Problem("unknown-order", f"no order {exc.order_id} was placed")
    return None


def failure_cause(exc: Exception) -> str:
    """The problem type ``exc`` answers as: a metric's ``cause`` label (``internal-error`` when the
    error is not the client's)."""
    if isinstance(exc, Problem):
        return exc.slug
    problem = engine_problem(exc)
    return problem.slug if problem is not None else "internal-error"
