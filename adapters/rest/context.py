"""What every REST handler shares: access checks, replies, and idempotent writes."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgpack
from starlette.requests import Request
from starlette.responses import Response

from syncline.engine.names import DocName
from syncline.engine.tokens import Grant
from syncline.server.admission import Admission, Admitted
from syncline.server.errors import Refused
from syncline.server.settings import Settings
from syncline.server.store import Claim, Receipt, Store, StoreUnavailable

from .documents import Documents
from .problems import Problem

logger = logging.getLogger(__name__)

JSON = "application/json"
MAX_KEY_LENGTH = 255
INTERNAL_KEY_PREFIX = "\u00a7"
"""Keys the adapter claims for itself start with this (§): client keys are ASCII, so never do."""


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

    def record(self, reply: Reply) -> Receipt | None:
        """The receipt the store keeps for this request: the reply's status, body and headers,
        encoded here (msgpack), opaque to the store."""
        if self.key is None:
            return None
        record = msgpack.packb({"status": reply.status, "body": reply.encoded(),
                                "headers": [list(h) for h in sorted(reply.headers.items())]})
        return Receipt(self.tenant, self.key, self.fingerprint, record, time.time())


def replay(receipt: Receipt) -> Response:
    """The reply a receipt holds, sent again (marked ``Idempotent-Replayed``)."""
    fields_ = msgpack.unpackb(receipt.record)
    headers = {str(name): str(value) for name, value in fields_["headers"]}
    headers["Idempotent-Replayed"] = "true"
    return Response(bytes(fields_["body"]), status_code=int(fields_["status"]), media_type=JSON, headers=headers)


@dataclass
class RestContext:
    settings: Settings
    admission: Admission
    store: Store
    documents: Documents

    # -- access ------------------------------------------------------------------

    def grant(self, request: Request) -> Grant:
        """The verified grant of the request's token, for the tenant of its path."""
        try:
            return self.admission.tenant(_raw_path(request), b"/", request.path_params["tenant"], request.headers,
                                         request.query_params, encoded=True, cookies=True)
        except Refused as refusal:
            raise _problem(refusal) from None

    def admit(self, request: Request, kind: str, id_param: str, *, write: bool) -> Admitted:
        """The document ``tenant/kind/{id_param}`` and the token's grant; 4xx if it may not (write)."""
        parts = (request.path_params["tenant"], kind, request.path_params[id_param])
        try:
            return self.admission.document(_raw_path(request), b"/", parts, request.headers, request.query_params,
                                           write=write, encoded=True, cookies=True)
        except Refused as refusal:
            raise _problem(refusal) from None

    def document(self, request: Request, kind: str, id_param: str, *, write: bool) -> DocName:
        """The document ``tenant/kind/{id_param}``; 4xx if the token may not open it (write)."""
        return self.admit(request, kind, id_param, write=write).name

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
        # The claim answers with the kept reply when there is one: no recall before it.
        kept = await self._claim(tenant, idem.key, idem.fingerprint, holder)
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
        return replay(kept)

    @asynccontextmanager
    async def exclusive(self, tenant: str, name: str, *, wait: float, busy: Problem) -> AsyncIterator[None]:
        """Hold ``name`` for ``tenant`` on every relay sharing the store while the block runs.

        It is a claim in the store under a key no client can send (see
        :data:`INTERNAL_KEY_PREFIX`): taken when free, waited for (polling) while another
        request holds it, for at most ``wait`` seconds, after which ``busy`` is raised. A
        claim left by a relay that died is taken over after ``idempotency_claim_seconds``.
        """
        key = INTERNAL_KEY_PREFIX + name
        holder = uuid.uuid4().hex
        deadline = anyio.current_time() + wait
        delay = 0.005
        while True:
            held = await self._claim(tenant, key, name, holder)
            if held is None:
                break  # nothing awaits between here and the try below: the release is certain
            if anyio.current_time() + delay > deadline:
                raise busy
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)
        try:
            yield
        finally:
            await self._release(tenant, key, holder)

    async def _claim(self, tenant: str, key: str, fingerprint: str, holder: str) -> Receipt | Claim | None:
        """Claim ``key`` for ``holder``: None when taken, else what holds it (a claim or a kept reply).

        Shielded: a claim taken by a call cancelled on its way back would block the key until
        it expired, with nobody left to release it."""
        try:
            with anyio.CancelScope(shield=True):
                return await self.store.claim(tenant, key, fingerprint, holder,
                                              expire_after=self.settings.idempotency_claim_seconds)
        except StoreUnavailable:
            raise Problem("store-unavailable", headers={"Retry-After": "5"}) from None

    async def _release(self, tenant: str, key: str, holder: str) -> None:
        """Give the key back, even for a cancelled request; if the store is unreachable, the
        claim expires by itself after ``idempotency_claim_seconds``."""
        with anyio.CancelScope(shield=True):
            try:
                await self.store.release(tenant, key, holder)
            except StoreUnavailable as exc:
                logger.warning("could not release the claim on key %r of %s: %s", key, tenant, exc)


PROBLEMS: dict[str, tuple[str, dict[str, str]]] = {
    "invalid_document_name": ("invalid-document-name", {}),
    "missing_token": ("unauthorized", {"WWW-Authenticate": 'Bearer realm="syncline"'}),
    "invalid_token": ("unauthorized", {"WWW-Authenticate": 'Bearer realm="syncline", error="invalid_token"'}),
    "token_expired": ("unauthorized", {"WWW-Authenticate": 'Bearer realm="syncline", error="invalid_token"'}),
    "forbidden": ("forbidden", {}),
    "read_only": ("read-only", {}),
}
"""The problem type (and headers) of each admission refusal."""


def _problem(refusal: Refused) -> Problem:
    kind, headers = PROBLEMS[refusal.reason]
    return Problem(kind, refusal.detail, headers=headers, cause=refusal.reason)


def _raw_path(request: Request) -> bytes:
    return bytes(request.scope.get("raw_path") or request.scope["path"].encode())


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
