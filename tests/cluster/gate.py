"""A TCP forwarder the test controls: put it between a relay node and Redis, then cut the link."""

from __future__ import annotations

import anyio
import anyio.abc


class Gate:
    """Forwards a loopback port to ``target_port``; :meth:`close` drops every forwarded
    connection and refuses new ones until :meth:`open` is called again (same port);
    :meth:`pause` keeps the connections open but stops moving bytes (a black hole)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._scope: anyio.CancelScope | None = None
        self._flowing = anyio.Event()
        self._flowing.set()

    def pause(self) -> None:
        if self._flowing.is_set():
            self._flowing = anyio.Event()

    def resume(self) -> None:
        self._flowing.set()

    async def open(self, tg: anyio.abc.TaskGroup) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        scope = self._scope = anyio.CancelScope()

        async def serve() -> None:
            with scope:
                async with listener:
                    await listener.serve(self._forward)

        tg.start_soon(serve)

    def close(self) -> None:
        if self._scope is not None:
            self._scope.cancel()  # the listener and every forwarded connection go
            self._scope = None

    async def _forward(self, client: anyio.abc.SocketStream) -> None:
        try:
            upstream = await anyio.connect_tcp("127.0.0.1", self.target_port)
        except OSError:
            await client.aclose()
            return
        async with client, upstream, anyio.create_task_group() as tg:
            tg.start_soon(self._pipe, client, upstream, tg.cancel_scope)
            await self._pipe(upstream, client, tg.cancel_scope)

    async def _pipe(self, source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream,
                    scope: anyio.CancelScope) -> None:
        try:
            async for chunk in source:
                await self._flowing.wait()
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # either side went away: the forwarded connection ends
        scope.cancel()
