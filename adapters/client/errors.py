"""Typed errors raised by the sync client.

Every error carries its data as attributes so that callers (a user interface,
the ``syncline client`` command) can act on it without parsing messages. No
message ever contains a token.
"""

from __future__ import annotations

from pathlib import Path


class ClientError(Exception):
    """Base class of every error the sync client raises on purpose."""


class ClientSettingsError(ClientError, ValueError):
    """Raised when a client setting is out of range or malformed; ``name`` says which."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class LocalStoreError(ClientError):
    """Raised when the client's SQLite file cannot be opened, read or written.

    ``path`` is the file; the SQLite error is chained as the cause.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"local store {path}: {reason}")
        self.path = path
        self.reason = reason


class ClientClosed(ClientError):
    """Raised when a document is used through a client whose context has exited."""


class DocumentKindMismatch(ClientError, ValueError):
    """Raised when a document is opened as a kind its name does not have (a stock name as a cart).

    ``name`` is the document name, ``expected`` the kind asked for.
    """

    def __init__(self, name: str, expected: str) -> None:
        super().__init__(f"{name!r} is not a {expected} document name ({{tenant}}/{expected}/{{id}})")
        self.name = name
        self.expected = expected


class InvalidDocumentName(ClientError, ValueError):
    """Raised when a name is not ``{tenant}/{kind}/{id}`` with the relay's naming rules."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid document name {name[:80]!r}: {reason}")
        self.name = name
        self.reason = reason


class RelayRejected(ClientError):
    """Raised (and shown in a replica's ``error``) when the relay closed with a code that
    retrying unchanged cannot fix: 4400, 4401, 4403, 4404, 4405, 4413, 4419, 4422, any other 44xx.

    ``code`` and ``reason`` are the close frame's; ``url`` is the relay, without its token.
    """

    def __init__(self, code: int, reason: str, url: str) -> None:
        super().__init__(f"relay {url} refused the document with close code {code} ({reason or 'no reason'})")
        self.code = code
        self.reason = reason
        self.url = url


class Unauthorized(RelayRejected):
    """Raised when the relay refused the token (4401): missing, forged or signed with another secret."""


class TokenExpired(RelayRejected):
    """Raised when the relay says the token has expired (4419): a new token is needed."""


class Forbidden(RelayRejected):
    """Raised when the document lies outside the token's tenant or patterns (4403), or the
    token is read-only and the client wrote (4405)."""


class UpdateRefused(RelayRejected):
    """Raised when the relay refused what the client sent (4400, 4413, 4422): a frame, a size
    or an update it will refuse again; the outbox keeps the update."""


class AcksUnsupported(ClientError):
    """Raised when a relay's welcome says it will not acknowledge writes: the outbox could never drain."""

    def __init__(self, url: str) -> None:
        super().__init__(f"relay {url} does not offer durable acknowledgements")
        self.url = url


class SyncTimeout(ClientError, TimeoutError):
    """Raised when a document did not reach the synced state within ``timeout`` seconds.

    ``pending`` is the number of updates still waiting for an acknowledgement.
    """

    def __init__(self, name: str, timeout: float, pending: int) -> None:
        super().__init__(f"{name}: not synced after {timeout:g} s ({pending} pending)")
        self.name = name
        self.timeout = timeout
        self.pending = pending


class InvalidQuery(ClientError, ValueError):
    """Raised before any request when an argument of a REST query breaks a rule the relay would
    refuse it for (a stage not in ``STAGES``, a limit above 100, a malformed URL); ``field`` says which."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class RestProblem(ClientError):
    """Raised when the relay answers a REST request with an error status (401, 403, 400, 429, 503...).

    ``status`` is the HTTP status; ``type``, ``title`` and ``detail`` are the RFC 9457
    problem's (``type`` is ``about:blank`` and ``title`` the reason phrase when the body was
    no problem, a proxy's page say); ``problem`` holds the whole body, extension members
    included; ``url`` is the request's, without its query.
    """

    def __init__(self, status: int, problem: dict[str, object], url: str, reason_phrase: str = "") -> None:
        type_, title, detail = problem.get("type"), problem.get("title"), problem.get("detail")
        self.status = status
        self.type = type_ if isinstance(type_, str) else "about:blank"
        self.title = title if isinstance(title, str) else reason_phrase or f"HTTP {status}"
        self.detail = detail if isinstance(detail, str) else None
        self.problem = problem
        self.url = url
        explained = f"{self.title}: {self.detail}" if self.detail else self.title
        super().__init__(f"relay {url} answered {status} {explained}")


class RelayUnreachable(ClientError, ConnectionError):
    """Raised when a REST request got no answer: connection refused, unknown host, or no
    answer within the timeout. ``url`` is the request's, without its query; ``reason`` says what failed."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"relay {url} unreachable: {reason}")
        self.url = url
        self.reason = reason


class UnexpectedResponse(ClientError):
    """Raised when a REST answer is not the documented body (not a Syncline relay, or a proxy's
    page answered 200); ``url`` is the request's, ``reason`` what was wrong."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"relay {url} gave an unexpected answer: {reason}")
        self.url = url
        self.reason = reason
