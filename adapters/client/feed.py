"""Following a tenant's change feed (``GET /v1/tenants/{tenant}/events``, docs/rest.md) from Python.

::

    async with ChangeFeed("ws://127.0.0.1:8787", token, "acme", types=["order.*"]) as feed:
        async for event in feed:
            print(event.id, event.type, event.data["order"])
            remember(feed.last_id)           # where a later feed resumes: ChangeFeed(..., since=...)

The feed opens the stream and reopens it after any drop (a relay restart or shutdown, a proxy
that cut it, a stream silent for three heartbeats, the end a stream reaches when its token
expires), after a backoff with full jitter, with ``Last-Event-ID`` the last event it handed out:
the relay continues right after it, missing nothing and repeating nothing, or sends ``reset``
when it cannot (the events were pruned, or the store is another history). Given several relays
(the nodes of a cluster), each reconnection goes to the next. ``token`` may be a function that
returns the current token (or an awaitable of it), asked before each connection, so a feed
outlives its tokens.

An error answer that asking again cannot mend ends the iteration with :class:`RestProblem`: a
bad filter or id (400, 422), a refused token (401), another tenant's (403), a wrong address
(404). Every other failure
(no answer, 429, 5xx, a stream cut short) is retried; :attr:`ChangeFeed.status` says which of
``connecting``, ``open``, ``reconnecting``, ``closed`` the feed is in.

The stream is read with the standard library's ``http.client`` on a worker thread of the
feed's own (the client adds no HTTP dependency); closing the feed shuts its socket down, so
the thread ends at once. The token goes in an ``Authorization: Bearer`` header, never in the
URL; no proxy from the environment is used and no redirect is followed.
"""

from __future__ import annotations

import inspect
import json
import math
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException, HTTPResponse, HTTPSConnection
from types import TracebackType
from typing import Any, Self
from urllib.parse import SplitResult, quote, urlencode, urlsplit

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from syncline.engine.changes import FEED_TYPE_FILTERS, MAX_FEED_FILTERS
from syncline.engine.errors import InvalidDocumentName as EngineNameError
from syncline.engine.names import check_kind, check_part

from .backoff import Backoff
from .errors import InvalidQuery, RelayUnreachable, RestProblem, UnexpectedResponse
from .rest import check_token, problem_body, rest_base

MAX_LINE_BYTES = 1024 * 1024
"""The longest line of the stream read; a longer one is a broken stream (dropped, reopened)."""
FINAL_STATUSES = frozenset({400, 401, 403, 404, 422})
"""Error answers that asking again would only repeat: they end the iteration."""

Token = str | None | Callable[[], "str | None | Awaitable[str | None]"]


@dataclass(frozen=True)
class FeedEvent:
    """One event of the feed: ``type`` (``order.created``, ``reset``, ``broadcast``, ...), its
    ``data`` as the relay sent it (docs/rest.md lists each type's fields) and its ``id``
    (None for the events that have none, as ``broadcast``)."""

    type: str
    data: dict[str, Any]
    id: str | None


class ChangeFeed:
    """The change feed of ``tenant``: ``async with`` it, then ``async for`` its events.

    ``base_url`` is the relay's sync or HTTP address, or several relays' (asked in turn).
    ``types``, ``documents`` (``kind/id`` or ``tenant/kind/id``) and ``orders`` are the relay's
    filters; ``since`` an event id to resume after (else the feed starts with the next change).
    ``connect_timeout`` bounds each connection until the relay's first event; after it, a stream
    that sends nothing, not even a heartbeat, for three heartbeat periods is dropped and reopened.
    Every argument is checked here: :class:`InvalidQuery` names the first bad one.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        token: Token,
        tenant: str,
        *,
        types: Sequence[str] = (),
        documents: Sequence[str] = (),
        orders: Sequence[str] = (),
        since: str | None = None,
        connect_timeout: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        bases = (base_url,) if isinstance(base_url, str) else tuple(base_url)
        if not bases:
            raise InvalidQuery("base_url", "give at least one relay address")
        self._urls = [
            feed_url(base, tenant, types=types, documents=documents, orders=orders) for base in bases
        ]
        if since is not None and (
            not isinstance(since, str)
            or not since
            or not since.isascii()
            or not since.isprintable()
            or len(since) > 64
        ):
            raise InvalidQuery("since", "must be an event id this feed gave out")
        if (
            isinstance(connect_timeout, bool)
            or not isinstance(connect_timeout, (int, float))
            or not 0 < connect_timeout < math.inf
        ):
            raise InvalidQuery(
                "connect_timeout", f"must be a positive number of seconds, not {connect_timeout!r}"
            )
        if not (token is None or isinstance(token, str) or callable(token)):
            raise InvalidQuery("token", "must be a string, None or a function returning one")
        if isinstance(token, str):
            check_token(token)
        self._token = token
        self._connect_timeout = float(connect_timeout)
        self._backoff = backoff if backoff is not None else Backoff(0.5, 30.0)
        self.last_id: str | None = since
        """The id of the last event handed out (or the stream's position before any): where the
        next stream resumes."""
        self.status = "connecting"
        """``connecting`` (the first attempt), ``open``, ``reconnecting`` (waiting or retrying),
        ``closed``."""
        self.events_seen = 0
        """Events handed out since the feed was made."""
        self.url: str | None = None
        """The feed URL of the relay the open stream comes from (no query), None while none is open."""
        self._next = 0
        self._sock: socket.socket | None = None
        self._tg: TaskGroup | None = None
        self._send: MemoryObjectSendStream[FeedEvent | Exception] | None = None
        self._receive: MemoryObjectReceiveStream[FeedEvent | Exception] | None = None
        self._limiter = anyio.CapacityLimiter(1)

    async def __aenter__(self) -> Self:
        if self._tg is not None or self.status == "closed":
            raise RuntimeError("a ChangeFeed is entered once")
        self._send, self._receive = anyio.create_memory_object_stream[FeedEvent | Exception](0)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._follow)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self.close()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)  # the body's own exception propagates as raised
        return None

    def close(self) -> None:
        """Stop: the open stream's socket is shut down and the iteration ends."""
        self.status = "closed"
        self._drop()
        for stream in (self._send, self._receive):
            if stream is not None:
                stream.close()

    def __aiter__(self) -> ChangeFeed:
        return self

    async def __anext__(self) -> FeedEvent:
        if self._receive is None:
            raise RuntimeError("enter the feed with 'async with' before iterating it")
        try:
            item = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, Exception):
            self.close()
            raise item
        self.events_seen += 1
        if item.id is not None:
            self.last_id = item.id
        return item

    # -- the stream ----------------------------------------------------------------------

    async def _follow(self) -> None:
        assert self._send is not None
        send = self._send
        try:
            while self.status != "closed":
                url = self._urls[self._next % len(self._urls)]
                try:
                    await self._stream(url, send)
                except RestProblem as exc:
                    if exc.status in FINAL_STATUSES:
                        await send.send(exc)
                        return
                except _TokenFailed as exc:
                    await send.send(exc.error)
                    return
                except (RelayUnreachable, UnexpectedResponse, _Dropped):
                    pass
                self._drop()
                if self.status == "closed":
                    return
                self.status, self.url = "reconnecting", None
                self._next += 1
                await anyio.sleep(self._backoff.next_delay())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return  # the feed was closed while an event waited for its reader
        finally:
            send.close()

    async def _stream(self, url: str, send: MemoryObjectSendStream[FeedEvent | Exception]) -> None:
        headers = {
            "Accept": "text/event-stream",
            "Cache-Control": "no-store",
            "User-Agent": "syncline-client",
        }
        token = await self._current_token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        portal = _Portal(send)
        await anyio.to_thread.run_sync(
            self._read, url, headers, portal, abandon_on_cancel=True, limiter=self._limiter
        )

    async def _current_token(self) -> str | None:
        given = self._token
        try:
            if callable(given):
                answer = given()
                token = (await answer) if inspect.isawaitable(answer) else answer
                if not (token is None or isinstance(token, str)):
                    raise InvalidQuery("token", f"the token function returned a {type(token).__name__}")
            else:
                token = given
            if token is not None:
                check_token(token)
        except Exception as exc:  # the caller's function failed: the reader gets its error
            raise _TokenFailed(exc) from exc
        return token

    def _read(self, url: str, headers: dict[str, str], portal: _Portal) -> None:
        """On the feed's thread: open ``url`` and hand each event to the reader, until the stream ends."""
        display = url.split("?", 1)[0]
        parts = urlsplit(url)
        try:
            conn, sock = _connect(parts, self._connect_timeout)
        except OSError as exc:
            raise RelayUnreachable(display, f"{type(exc).__name__}: {exc}") from exc
        self._sock = sock
        try:
            if self.status == "closed":
                return  # closed while connecting
            try:
                conn.request(
                    "GET", f"{parts.path}?{parts.query}" if parts.query else parts.path, headers=headers
                )
                response = conn.getresponse()
            except OSError as exc:
                raise RelayUnreachable(display, f"{type(exc).__name__}: {exc}") from exc
            except HTTPException as exc:
                raise UnexpectedResponse(display, f"{type(exc).__name__}: {exc}") from exc
            try:
                self._follow_stream(response, sock, display, portal)
            finally:
                response.close()
        finally:
            self._sock = None
            conn.close()
            sock.close()

    def _follow_stream(
        self, response: HTTPResponse, sock: socket.socket, display: str, portal: _Portal
    ) -> None:
        if response.status != 200:
            raise _problem(response, display)
        if response.getheader("Content-Type", "").split(";", 1)[0].strip() != "text/event-stream":
            raise UnexpectedResponse(display, "the answer is not an event stream")
        self.url = display
        for event in _events(response, display):
            if event.type == "connected":  # the first event of every stream
                if event.id is not None:
                    self.last_id = event.id  # the stream continues after it: so does the next one
                heartbeat = event.data.get("heartbeat_seconds")
                if (
                    isinstance(heartbeat, (int, float))
                    and not isinstance(heartbeat, bool)
                    and 0 < heartbeat < 3600
                ):
                    sock.settimeout(max(3 * float(heartbeat), 1.0))
                self.status = "open"
                self._backoff.reset()
            elif event.type != "heartbeat":
                portal.hand(event)
        raise _Dropped(display)

    def _drop(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it, which closes it
            except OSError:
                pass  # closed already


class _Dropped(Exception):
    """The stream ended or broke; the feed reopens it."""


class _TokenFailed(Exception):
    """The token function raised ``error`` (or returned no token): the iteration ends with it."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Portal:
    """The thread's way to hand events to the feed's reader, one at a time (it waits for the reader)."""

    def __init__(self, send: MemoryObjectSendStream[FeedEvent | Exception]) -> None:
        self._send = send

    def hand(self, event: FeedEvent) -> None:
        try:
            anyio.from_thread.run(self._send.send, event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError) as exc:
            raise _Dropped("the feed was closed") from exc


def feed_url(
    base_url: str,
    tenant: str,
    *,
    types: Sequence[str] = (),
    documents: Sequence[str] = (),
    orders: Sequence[str] = (),
) -> str:
    """The feed's URL with its filters, every argument checked (:class:`InvalidQuery` names the
    first bad one)."""
    try:
        check_part("tenant", tenant)
    except EngineNameError as exc:
        raise InvalidQuery("tenant", exc.reason) from None
    params: list[tuple[str, str]] = []
    for field, values in (("types", types), ("documents", documents), ("orders", orders)):
        if isinstance(values, str) or not isinstance(values, Sequence):
            raise InvalidQuery(field, "must be a list of strings")
        if len(values) > MAX_FEED_FILTERS:
            raise InvalidQuery(field, f"at most {MAX_FEED_FILTERS} values")
    for kind in types:
        if kind not in FEED_TYPE_FILTERS:
            raise InvalidQuery("types", f"must be among {', '.join(FEED_TYPE_FILTERS)}, not {kind!r}")
        params.append(("type", kind))
    for doc in documents:
        parts = doc.split("/") if isinstance(doc, str) else []
        if len(parts) == 3 and parts[0] != tenant:
            raise InvalidQuery("documents", f"{doc[:80]!r} is not a document of tenant {tenant!r}")
        kind_id = parts[-2:] if len(parts) in (2, 3) else []
        try:
            if not kind_id:
                raise EngineNameError(str(doc)[:80], "give kind/id or tenant/kind/id")
            check_kind(kind_id[0])
            check_part("doc_id", kind_id[1])
        except EngineNameError as exc:
            raise InvalidQuery("documents", exc.reason) from None
        params.append(("doc", "/".join(kind_id)))
    for order in orders:
        try:
            check_part("doc_id", order)
        except EngineNameError as exc:
            raise InvalidQuery("orders", exc.reason) from None
        params.append(("order", order))
    query = f"?{urlencode(params)}" if params else ""
    return f"{rest_base(base_url)}/v1/tenants/{quote(tenant, safe='')}/events{query}"


# -- internals ----------------------------------------------------------------------------


def _connect(parts: SplitResult, timeout: float) -> tuple[HTTPConnection, socket.socket]:
    """A connection to the relay on a socket of our own: http.client lets go of its socket when
    an answer says ``Connection: close``, and the feed must still be able to shut it down."""
    https = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if https else 80)
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host) if https else raw
    except BaseException:
        raw.close()
        raise
    conn = (HTTPSConnection if https else HTTPConnection)(host, port, timeout=timeout)
    conn.sock = sock
    return conn, sock


def _problem(response: HTTPResponse, url: str) -> RestProblem:
    try:
        raw = response.read(64 * 1024)
    except (OSError, HTTPException):
        raw = b""
    return RestProblem(response.status, problem_body(raw), url, response.reason or "")


def _events(response: HTTPResponse, url: str) -> Iterator[FeedEvent]:
    """The stream's events as the Server-Sent Events rules cut them; ends when the stream does."""
    kind, event_id = "", None
    data: list[str] = []
    while True:
        try:
            line = response.readline(MAX_LINE_BYTES + 1)
        except (OSError, HTTPException) as exc:  # a timeout (silent stream), a reset, a bad chunk
            raise _Dropped(f"{url}: {type(exc).__name__}: {exc}") from exc
        if not line:
            return
        if len(line) > MAX_LINE_BYTES:
            raise _Dropped(f"{url}: a line longer than {MAX_LINE_BYTES} bytes")
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not text:
            if data:
                yield _event(kind or "message", "\n".join(data), event_id, url)
            kind, data, event_id = "", [], None
            continue
        if text.startswith(":"):
            continue
        field, _, value = text.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            kind = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\0" not in value:
            event_id = value or None


def _event(kind: str, raw: str, event_id: str | None, url: str) -> FeedEvent:
    try:
        data = json.loads(raw)
    except ValueError:
        raise UnexpectedResponse(url, f"an event {kind[:40]!r} whose data is not JSON") from None
    if not isinstance(data, dict):
        raise UnexpectedResponse(url, f"an event {kind[:40]!r} whose data is not an object")
    return FeedEvent(kind, data, event_id)
