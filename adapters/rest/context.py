"""What every REST handler shares: access checks, replies, and idempotent writes."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

import anyio
from starlette.requests import Request
from starlette.responses import Response

from syncline.engine.errors import ExpiredToken, InvalidDocumentName, InvalidToken
from syncline.engine.tokens import Grant, verify_token
from syncline.server.auth import token_from_request
from syncline.engine.names import DocName, check_part
from syncline.server.settings import Settings
from syncline.server.store import Claim, Store, StoredResponse, StoreUnavailable

from .documents import Documents
from .problems import Problem

logger = logging.getLogger(__name__)

JSON = "application/json"
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()

    def response(self) -> Response:
        return Response(self.encoded(), status_code=self.status, media_type=JSON, headers=self.headers)


@dataclass
class Idempotency:
    """The ``Idempotency-Key`` of one write request, if it has one.

    :meth:`record` turns the reply into the record the store keeps with the write's
    update (same transaction); ``kept`` says whether that happened, so a write that
    changed nothing remembers its reply on its own.
    """

    tenant: str
    key: str | None
    fingerprint: str
    kept: bool = False

    def record(self, reply: Reply) -> StoredResponse | None:
        if self.key is None:
            return None
        headers = tuple(sorted(reply.headers.items()))
        return StoredResponse(self.tenant, self.key, self.fingerprint, reply.status, reply.encoded(), headers,
                              time.time())


@dataclass
class RestContext:
    settings: Settings
    secret: str
    store: Store
    documents: Documents

    # -- access ------------------------------------------------------------------

    def grant(self, request: Request) -> Grant:
        """The verified grant of the request's token, for the tenant of its path."""
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        try:
            check_rest_path(raw)
            tenant = check_part("tenant", request.path_params["tenant"])
        except InvalidDocumentName as exc:
            raise Problem("invalid-document-name", exc.reason) from None
        token = token_from_request(request.headers, request.query_params)
        if token is None:
            raise Problem("unauthorized", "send Authorization: Bearer TOKEN", headers=_challenge())
        try:
            grant = verify_token(self.secret, token)
        except ExpiredToken:
            raise Problem("unauthorized", "the token has expired", headers=_challenge("invalid_token")) from None
        except InvalidToken:
            raise Problem("unauthorized", "the token is not valid", headers=_challenge("invalid_token")) from None
        if grant.tenant != tenant:
            raise Problem("forbidden", "the token belongs to another tenant")
        return grant

    def document(self, request: Request, kind: str, id_param: str, *, write: bool) -> DocName:
        """Check the token against ``tenant/kind/{id_param}``; 403 if it may not (write)."""
        grant = self.grant(request)
        try:
            name = DocName(grant.tenant, kind, check_part("doc_id", request.path_params[id_param]))
        except InvalidDocumentName as exc:
            raise Problem("invalid-document-name", exc.reason) from None
        if not grant.allows(name):
            raise Problem("forbidden", f"the token does not cover {kind}/{name.doc_id}")
        if write and grant.read_only:
            raise Problem("read-only", "this token may read but not write")
        return name

    # -- writes ------------------------------------------------------------------

    async def write(
        self, request: Request, tenant: str, body: dict[str, Any] | None,
        perform: Callable[[Idempotency], Awaitable[Reply]],
    ) -> Response:
        """Run ``perform`` once per ``Idempotency-Key``: a retry gets the first reply back.

        The key is claimed in the store before ``perform`` runs, so concurrent requests
        with one key run once even on different relays sharing the store: the others get
        the first reply if it is kept by then, or 409 while it runs (422 for another request).
        """
        idem = Idempotency(tenant, _idempotency_key(request), _fingerprint(request, body))
        if idem.key is None:
            return (await perform(idem)).response()
        holder = uuid.uuid4().hex
        try:
            kept = await self.store.recall(tenant, idem.key) or await self.store.claim(
                tenant, idem.key, idem.fingerprint, holder, expire_after=self.settings.idempotency_claim_seconds)
        except StoreUnavailable:
            raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
        if kept is None:  # this request holds the key: run it, keep its reply, give the key back
            try:
                reply = await perform(idem)
                record = None if idem.kept else idem.record(reply)  # kept: stored with the edit
                if record is not None:
                    try:
                        kept = await self.store.remember(record)
                    except StoreUnavailable:
                        raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None
                if record is None or kept == record:
                    return reply.response()
            finally:
                await self._release(tenant, idem.key, holder)
        assert kept is not None
        if kept.fingerprint != idem.fingerprint:
            raise Problem("idempotency-key-reused", "this key was first used with another request")
        if isinstance(kept, Claim):
            raise Problem("idempotency-key-in-use", headers={"Retry-After": "1"})
        headers = dict(kept.headers)
        headers["Idempotent-Replayed"] = "true"
        return Response(kept.body, status_code=kept.status, media_type=JSON, headers=headers)

    async def _release(self, tenant: str, key: str, holder: str) -> None:
        """Give the key back, even for a cancelled request; if the store is unreachable, the
        claim expires by itself after ``idempotency_claim_seconds``."""
        with anyio.CancelScope(shield=True):
            try:
                await self.store.release(tenant, key, holder)
            except StoreUnavailable as exc:
                logger.warning("could not release the claim on idempotency key %r of %s: %s", key, tenant, exc)


_SMUGGLERS = (b"%2f", b"%5c", b"%2e", b"%25", b"%00")


def check_rest_path(raw_path: bytes) -> None:
    """Refuse a raw path whose decoding could move it: encoded ``/``, ``\\``, ``.``, ``%``
    or NUL, non-ASCII bytes, and dot segments. Other percent-encoding (a ``%3A`` for
    ``:``) is fine: ids are checked again after decoding."""
    raw = bytes(raw_path)
    lowered = raw.lower()
    if any(smuggler in lowered for smuggler in _SMUGGLERS):
        raise InvalidDocumentName(raw.decode("ascii", "backslashreplace"), "encoded / \\ . % or NUL in the path")
    if any(byte >= 0x80 or byte < 0x21 for byte in raw):
        raise InvalidDocumentName(raw.decode("ascii", "backslashreplace"), "non-ASCII or control bytes in the path")
    if any(segment in (b".", b"..") for segment in raw.split(b"/")):
        raise InvalidDocumentName(raw.decode("ascii", "backslashreplace"), "dot segments are not allowed")
    try:  # routing decodes %FF as U+FFFD: a sku or id would silently become another one
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidDocumentName(raw.decode("ascii", "backslashreplace"), "percent-encoding that is not UTF-8")\
            from None


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise Problem("invalid-header", f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return key


def request_fingerprint(method: str, path: str, body: dict[str, Any] | None) -> str:
    """What identifies a request under its Idempotency-Key: method, path and the parsed body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def _fingerprint(request: Request, body: dict[str, Any] | None) -> str:
    return request_fingerprint(request.method, request.url.path, body)


def _challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="syncline"' + (f', error="{error}"' if error else "")
    return {"WWW-Authenticate": value}
