"""Deadlines uvicorn does not set: for a request to arrive, and for a dropped peer to let go.

Uvicorn arms no timer while a request is arriving: a client that opens a TCP
connection and sends nothing, or trickles its request line, headers or body a byte
at a time (slowloris), holds a socket and a protocol object for as long as it likes.
:class:`GuardedHttpToolsProtocol` is uvicorn's httptools protocol with one timer per
request, armed when the connection opens and when a keep-alive request begins, and
cleared once the request has arrived (for a WebSocket, once the upgrade request's
headers have). When it fires, the connection is answered ``408`` if nothing was
answered yet, and closed.

Once a WebSocket is open, uvicorn's keepalive pings bound a client stuck mid-frame:
it cannot answer a ping inside a frame, and is dropped ``ws_ping_seconds`` after the
unanswered ping (see ``serve.py``).

When the relay is done with a WebSocket (a slow consumer dropped, a keepalive timeout),
uvicorn closes the transport gracefully, and asyncio then keeps the socket open until
its write buffer has drained: forever, for a peer that never reads, with the buffer and
the file descriptor. :class:`GuardedWebSocketProtocol` aborts such a transport
:data:`LINGER_SECONDS` after the application has finished with it, or after a keepalive
timeout: a peer that never reads leaves the application waiting to write (uvicorn's send
waits for the buffer to drain), so the application would never finish on its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nRequest Timeout\n"
)


LINGER_SECONDS = 5.0
"""How long a finished WebSocket may take to flush its last frames (a close frame) to its peer."""


def guarded_http_protocol(timeout: float) -> type[asyncio.Protocol]:
    """Uvicorn's httptools protocol, dropping requests that take over ``timeout`` seconds to arrive."""

    class Guarded(GuardedHttpToolsProtocol):
        request_timeout = timeout

    return Guarded


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    request_timeout = 10.0

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._request_timer: asyncio.TimerHandle | None = None

    def _arm_request_timer(self) -> None:
        if self._request_timer is None:
            self._request_timer = self.loop.call_later(self.request_timeout, self._request_timed_out)

    def _disarm_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _request_timed_out(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # the app has not seen this request yet
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()  # an app still reading the body gets http.disconnect

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_request_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_request_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_request_timer()  # a keep-alive request: the same bound again

    def on_message_complete(self) -> None:
        self._disarm_request_timer()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm_request_timer()  # the WebSocket protocol takes the connection over
        super().handle_websocket_upgrade()


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """Uvicorn's WebSocket protocol, aborting a finished connection whose peer does not read."""

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if not self.disconnected and self.transport.get_write_buffer_size() > 0:
            # Frames the peer has not read yet; nothing is held (no timer) for peers that are gone.
            self.loop.call_later(LINGER_SECONDS, self._abort_if_stuck)

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        if not self.disconnected and self.transport.get_write_buffer_size() > 0:
            self.loop.call_later(LINGER_SECONDS, self._abort_if_stuck)

    def _abort_if_stuck(self) -> None:
        transport = self.transport
        if transport.get_extra_info("socket") is not None and transport.get_write_buffer_size() > 0:
            transport.abort()  # the peer has not read for LINGER_SECONDS after the end: let go of it
