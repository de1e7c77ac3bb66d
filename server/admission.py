"""Who may open which document: one admission for WebSocket peers and REST requests.

Both edges hand :class:`Admission` the raw request path, the path's parts, the headers
and the query parameters; it checks the path for smuggling, the name's rules, the
token (``Authorization: Bearer``, ``?token=`` or, for REST and SSE, the guest session
cookie), the grant's tenant and patterns, and
write access, in that order, and returns the document and its grant or raises
:class:`Refused` naming why. Each edge maps a refusal to its wire form in one table: a
close code for a WebSocket peer, a problem type for a REST request.

:class:`ConnectionSlots` then caps the WebSocket connections an admitted peer may hold open:
per process, per tenant and per token holder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from syncline.engine.errors import ExpiredToken, InvalidDocumentName, InvalidToken
from syncline.engine.names import DocName, check_part, check_raw_path
from syncline.engine.tokens import Grant, verify_token

from .auth import GUEST_COOKIE, cookie_from_headers, log_refusal, token_from_request
from .errors import Refused


@dataclass(frozen=True)
class Admitted:
    name: DocName
    grant: Grant


class Admission:
    """Checks requests against one relay's token secret."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def tenant(
        self, raw_path: bytes, prefix: bytes, tenant: str, headers: Mapping[str, str], query: Mapping[str, str],
        *, encoded: bool = False, cookies: bool = False,
    ) -> Grant:
        """The grant of the request's token, which must belong to ``tenant``.

        ``encoded``: the path may hold percent-encoding that cannot move it (REST paths
        carry skus and ids that may need it); a sync path may hold none at all."""
        try:
            check_raw_path(raw_path, prefix, encoded=encoded)
            tenant = check_part("tenant", tenant)
        except InvalidDocumentName as exc:
            raise Refused("invalid_document_name", exc.reason) from None
        grant = self._grant(headers, query, cookies)
        if grant.tenant != tenant:
            raise Refused("forbidden", "the token belongs to another tenant")
        return grant

    def document(
        self, raw_path: bytes, prefix: bytes, parts: tuple[str, str, str], headers: Mapping[str, str],
        query: Mapping[str, str], *, write: bool, encoded: bool = False, cookies: bool = False,
    ) -> Admitted:
        """The document ``tenant/kind/doc_id`` and the grant that may open it (for writing, if ``write``)."""
        tenant, kind, doc_id = parts
        try:
            check_raw_path(raw_path, prefix, encoded=encoded)
            name = DocName.parse(tenant, kind, doc_id)
        except InvalidDocumentName as exc:
            raise Refused("invalid_document_name", exc.reason) from None
        grant = self._grant(headers, query, cookies)
        if grant.tenant != name.tenant:
            raise Refused("forbidden", "the token belongs to another tenant")
        if not grant.allows(name):
            raise Refused("forbidden", f"the token does not cover {kind}/{name.doc_id}")
        if write and grant.read_only:
            raise Refused("read_only", "this token may read but not write")
        return Admitted(name, grant)

    def cookie_grant(self, headers: Mapping[str, str]) -> Grant | None:
        """The grant of the guest session cookie (:data:`~.auth.GUEST_COOKIE`), None when there is
        none or it is not valid."""
        token = cookie_from_headers(headers, GUEST_COOKIE)
        if token is None:
            return None
        try:
            return verify_token(self._secret, token)
        except (ExpiredToken, InvalidToken):
            return None

    def _grant(self, headers: Mapping[str, str], query: Mapping[str, str], cookies: bool = False) -> Grant:
        """``cookies``: the guest session cookie counts too (REST and SSE; never a WebSocket's)."""
        token = token_from_request(headers, query, cookie=GUEST_COOKIE if cookies else None)
        if token is None:
            log_refusal("missing_token", "the request carries no token")
            raise Refused("missing_token", "send Authorization: Bearer TOKEN")
        try:
            return verify_token(self._secret, token)
        except ExpiredToken as exc:
            log_refusal("token_expired", str(exc))
            raise Refused("token_expired", "the token has expired") from None
        except InvalidToken as exc:
            log_refusal("invalid_token", exc.reason)  # the client is told less than the log
            raise Refused("invalid_token", "the token is not valid") from None


@dataclass(frozen=True)
class Slot:
    """One connection's place in :class:`ConnectionSlots`, given back with :meth:`ConnectionSlots.release`."""

    tenant: str
    holder: str


class ConnectionSlots:
    """The WebSocket connections open on this process, capped in all, per tenant and per token holder.

    The holder of a grant is its token's subject (``sub``), or the token itself when it has
    none: one device or user cannot take every connection of its tenant, nor one tenant every
    connection of the process. A refusal names the narrowest cap that is full, checked in
    order: the process (``process_connections``, retry later or elsewhere), the holder
    (``token_connections``: close some of your own), the tenant (``too_many_connections``).
    """

    def __init__(self, total: int, per_tenant: int, per_token: int) -> None:
        self._caps = (total, per_tenant, per_token)
        self.total = 0
        self.per_tenant: Counter[str] = Counter()
        self.per_holder: Counter[tuple[str, str]] = Counter()

    def take(self, grant: Grant) -> Slot:
        """A slot for a connection of ``grant``, or :class:`Refused` naming the full cap."""
        total, per_tenant, per_token = self._caps
        slot = Slot(grant.tenant, grant.writer)
        if self.total >= total:
            raise Refused("process_connections", f"this relay holds its {total} connections")
        if self.per_holder[(slot.tenant, slot.holder)] >= per_token:
            raise Refused("token_connections", f"this token's holder has {per_token} connections open")
        if self.per_tenant[slot.tenant] >= per_tenant:
            raise Refused("too_many_connections", f"the tenant has {per_tenant} connections open")
        self.total += 1
        self.per_tenant[slot.tenant] += 1
        self.per_holder[(slot.tenant, slot.holder)] += 1
        return slot

    def release(self, slot: Slot) -> None:
        """Give back what :meth:`take` gave (once per slot)."""
        self.total -= 1
        self.per_tenant[slot.tenant] -= 1
        if self.per_tenant[slot.tenant] <= 0:
            del self.per_tenant[slot.tenant]
        holder = (slot.tenant, slot.holder)
        self.per_holder[holder] -= 1
        if self.per_holder[holder] <= 0:
            del self.per_holder[holder]
