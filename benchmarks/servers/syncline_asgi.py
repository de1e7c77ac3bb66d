"""``syncline serve`` with every frame handed to uvicorn as an ASGI ``websocket.send``.

The relay's own WebSocket protocol (``syncline.server.wsprotocol``) lets a connection write
whole, pre-encoded frames to its transport; stock uvicorn does not, and the relay then sends
through ASGI (the fallback path). This launcher serves the relay on the guarded stock protocol
so that ``python -m benchmarks.compare --servers syncline,syncline-asgi`` measures one path
against the other on the same build (docs/decisions/0003-send-path.md). For benchmarks only.

    python -m benchmarks.servers.syncline_asgi serve --port 8000 --data-dir /tmp/x
"""

from __future__ import annotations

import sys

from syncline.app.cli import main
from syncline.server import serve
from syncline.server.deadlines import GuardedWebSocketProtocol

if __name__ == "__main__":
    serve.FrameWebSocketProtocol = GuardedWebSocketProtocol  # type: ignore[misc]  # read by server_config
    sys.exit(main())
