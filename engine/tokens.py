"""Tenant tokens: HS256 JWTs that grant one tenant's documents by pattern (pure checks, no I/O).

A token carries the claims ``iss`` ("syncline"), ``tenant``, ``docs`` (a list of
patterns), ``ro`` (read-only), ``iat``, when it has a lifetime ``exp``, and when it
names a device or user ``sub``: the writer identity that Yjs client IDs are bound to
(:attr:`Grant.writer`).
:func:`verify_token` turns a token into a :class:`Grant`, and
:meth:`Grant.allows` answers whether a document may be opened with it.

Patterns are ``/``-separated segments. The first is the grant's tenant, literally;
each later segment is a literal or ``*`` (exactly one segment), and a final ``*``
matches one or more remaining segments::

    acme/*          every document of acme
    acme/cart/*     every cart of acme
    acme/*/main     the carts and stock ledgers of acme named "main"
    acme/cart/c-1   one document

A pattern that could never match a document name (another tenant, an unknown
kind, a bad id, a partial wildcard such as ``c-*``) is refused, when a token is
issued and again when one is verified: such a token is a bug, not a grant.

Nothing here logs or reads files (reading the secret is the relay's business), and no
error message quotes a token or a secret.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from .errors import ExpiredToken, InvalidDocumentName, InvalidToken, WeakSecret
from .names import KINDS, DocName, check_part

ALGORITHM = "HS256"
"""The only signing algorithm issued or accepted."""
ISSUER = "syncline"
"""Value of the ``iss`` claim; tokens with another issuer are refused."""
MIN_SECRET_CHARS = 32
"""Shortest secret accepted (HS256 keys should be at least 256 bits)."""
MAX_TOKEN_CHARS = 8_192
"""Longest token looked at; anything longer is refused before decoding."""
MAX_PATTERNS = 256
"""Most patterns one token may carry."""
MAX_SUBJECT_CHARS = 256
"""Longest ``sub`` claim accepted."""

# Compact JWS: three base64url segments, no padding. Checked before PyJWT sees the
# token because base64 decoding silently skips characters outside its alphabet
# (a NUL or a space slipped into a token must not leave it valid).
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", re.ASCII)


@dataclass(frozen=True)
class Grant:
    """What a verified token allows: some documents of one tenant, maybe read-only.

    ``expires_at`` is the token's ``exp`` (seconds since the epoch), or None when
    the token does not expire. ``subject`` is the token's ``sub`` claim and
    ``token_id`` a digest of the token itself (both None for a grant made in-process).
    A Grant is always valid: the constructor checks the tenant and every pattern and
    raises :class:`InvalidToken` otherwise.
    """

    tenant: str
    patterns: tuple[str, ...]
    read_only: bool = False
    expires_at: int | None = None
    subject: str | None = None
    token_id: str | None = field(default=None, compare=False)

    @property
    def writer(self) -> str:
        """Who the relay binds the Yjs client IDs this grant writes to: the token's subject
        when it has one, else the token itself (every holder of one token is one writer)."""
        if self.subject is not None:
            return f"sub:{self.subject}"
        if self.token_id is not None:
            return f"token:{self.token_id}"
        return f"tenant:{self.tenant}"

    def __post_init__(self) -> None:
        try:
            check_part("tenant", self.tenant)
        except InvalidDocumentName as exc:
            raise InvalidToken(f"tenant: {exc.reason}") from None
        if isinstance(self.patterns, str) or not isinstance(self.patterns, Sequence):
            raise InvalidToken("docs must be a list of patterns")
        object.__setattr__(self, "patterns", tuple(self.patterns))
        if not self.patterns:
            raise InvalidToken("docs grants no documents")
        if len(self.patterns) > MAX_PATTERNS:
            raise InvalidToken(f"docs holds more than {MAX_PATTERNS} patterns")
        for index, pattern in enumerate(self.patterns):
            _check_pattern(self.tenant, pattern, index)
        if not isinstance(self.read_only, bool):
            raise InvalidToken("ro must be true or false")
        if self.expires_at is not None and (
            isinstance(self.expires_at, bool) or not isinstance(self.expires_at, int)
        ):
            raise InvalidToken("exp must be an integer")

    def allows(self, name: DocName) -> bool:
        """True when ``name`` belongs to this grant's tenant and matches one of its patterns."""
        if name.tenant != self.tenant:
            return False
        parts = name.parts
        return any(_matches(pattern.split("/"), parts) for pattern in self.patterns)

    def is_expired(self, now: float | None = None) -> bool:
        """True once ``now`` (default: the current time) has reached ``expires_at``."""
        if self.expires_at is None:
            return False
        return (time.time() if now is None else now) >= self.expires_at


def _check_pattern(tenant: str, pattern: object, index: int) -> None:
    where = f"docs[{index}]"
    if not isinstance(pattern, str):
        raise InvalidToken(f"{where} must be a string")
    segments = pattern.split("/")
    if segments[0] != tenant:
        raise InvalidToken(f"{where} must start with the token's tenant")
    if len(segments) > 3:
        raise InvalidToken(f"{where} has more segments than tenant/kind/id")
    if len(segments) == 1:
        raise InvalidToken(f"{where} names no documents; use tenant/* for all of them")
    kind = segments[1]
    if kind != "*" and kind not in KINDS:
        raise InvalidToken(f"{where} kind must be * or one of {', '.join(KINDS)}")
    if len(segments) == 2:
        if kind != "*":
            raise InvalidToken(f"{where} names no documents; end it with /* or an id")
        return
    doc_id = segments[2]
    if doc_id != "*":
        try:
            check_part("doc_id", doc_id)
        except InvalidDocumentName as exc:
            raise InvalidToken(f"{where} id is neither * nor a valid id: {exc.reason}") from None


def _matches(segments: Sequence[str], parts: Sequence[str]) -> bool:
    """Match pattern segments against name parts; a final ``*`` takes one or more parts."""
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment == "*" and i == last:
            return len(parts) > i
        if i >= len(parts) or (segment != "*" and segment != parts[i]):
            return False
    return len(segments) == len(parts)


def _check_subject(subject: object) -> str:
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_CHARS:
        raise InvalidToken(f"sub must be a string of 1 to {MAX_SUBJECT_CHARS} characters")
    if not subject.isprintable():
        raise InvalidToken("sub must hold printable characters only")
    return subject


def _check_secret(secret: str) -> None:
    if not isinstance(secret, str):
        raise TypeError("the token secret must be a str")
    if len(secret) < MIN_SECRET_CHARS:
        raise WeakSecret(len(secret), MIN_SECRET_CHARS)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidToken(f"{name} must be a number of seconds")
    return value


def issue_token(
    secret: str,
    tenant: str,
    patterns: Sequence[str],
    *,
    read_only: bool = False,
    ttl_seconds: int | None = None,
    now: float | None = None,
    subject: str | None = None,
) -> str:
    """Sign a token granting ``patterns`` of ``tenant``; it expires ``ttl_seconds`` after ``now`` if given.

    ``subject`` (the ``sub`` claim) names the device or user holding the token: the relay
    binds the Yjs client IDs a writer creates to it, so tokens re-issued with the same
    subject keep writing them.

    Raises :class:`InvalidToken` when the grant is invalid (bad tenant or pattern,
    bad ``ttl_seconds``), :class:`WeakSecret` when the secret is too short.
    """
    _check_secret(secret)
    grant = Grant(tenant, patterns, read_only)  # type: ignore[arg-type]  # Grant turns a sequence into a tuple
    issued_at = math.floor(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "tenant": grant.tenant,
        "docs": list(grant.patterns),
        "ro": grant.read_only,
        "iat": issued_at,
    }
    if subject is not None:
        claims["sub"] = _check_subject(subject)
    if ttl_seconds is not None:
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
            raise InvalidToken("ttl_seconds must be a positive integer")
        claims["exp"] = issued_at + ttl_seconds
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str, *, now: float | None = None, leeway: float = 0) -> Grant:
    """Check a token's form, signature and claims and return its :class:`Grant`.

    Only HS256 with ``secret`` is accepted (``alg: none`` and every other algorithm
    are refused). Raises :class:`ExpiredToken` for a correctly signed token whose
    ``exp`` has passed (``leeway`` seconds of clock skew allowed), :class:`InvalidToken`
    for everything else that is wrong, :class:`WeakSecret` when the secret is too short.
    """
    _check_secret(secret)
    if isinstance(leeway, bool) or not isinstance(leeway, (int, float)) or not 0 <= leeway < math.inf:
        raise ValueError("leeway must be a non-negative number of seconds")
    if not isinstance(token, str) or token == "":
        raise InvalidToken("no token")
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken(f"longer than {MAX_TOKEN_CHARS} characters")
    if _COMPACT_JWS.fullmatch(token) is None:
        raise InvalidToken("not a signed JWT (three base64url segments)")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={
                "require": ["iss", "tenant", "docs"],
                "verify_exp": False,  # checked below against the injectable clock
                "verify_iat": False,
                "verify_nbf": False,
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise InvalidToken("signature does not verify") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise InvalidToken(f"algorithm is not {ALGORITHM}") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"missing claim {exc.claim}") from exc
    except jwt.InvalidIssuerError as exc:
        raise InvalidToken(f"issuer is not {ISSUER}") from exc
    except jwt.InvalidAudienceError as exc:
        raise InvalidToken("audience is not accepted") from exc
    except jwt.exceptions.InvalidSubjectError as exc:
        raise InvalidToken(f"sub must be a string of 1 to {MAX_SUBJECT_CHARS} characters") from exc
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("malformed token") from exc

    tenant, docs, read_only = claims["tenant"], claims["docs"], claims.get("ro", False)
    if not isinstance(tenant, str):
        raise InvalidToken("tenant must be a string")
    if not isinstance(docs, list):
        raise InvalidToken("docs must be a list of patterns")
    if not isinstance(read_only, bool):
        raise InvalidToken("ro must be true or false")
    expires_at, issued_at, not_before = _number(claims, "exp"), _number(claims, "iat"), _number(claims, "nbf")
    subject = claims.get("sub")
    grant = Grant(tenant, tuple(docs), read_only, None if expires_at is None else math.floor(expires_at),
                  subject=None if subject is None else _check_subject(subject),
                  token_id=hashlib.sha256(token.encode("ascii")).hexdigest()[:32])

    current = time.time() if now is None else now
    if issued_at is not None and issued_at > current + leeway:
        raise InvalidToken("issued in the future")
    if not_before is not None and current + leeway < not_before:
        raise InvalidToken("not valid yet")
    if expires_at is not None and current - leeway >= expires_at:
        raise ExpiredToken(math.floor(expires_at))
    return grant
