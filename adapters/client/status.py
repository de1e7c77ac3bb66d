"""What a user interface observes: connection status and change notifications."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal


class Status(str, Enum):
    """A document's connection to the relay.

    * ``DISCONNECTED``: not trying: no relay configured, the client closed, or the relay
      refused the document for good (the replica's ``error`` says why).
    * ``CONNECTING``: the first attempt since the client opened the document.
    * ``CONNECTED``: the handshake is done both ways (the relay's sync step 2 is applied,
      and the relay acknowledged ours); edits flow both ways and are acknowledged as they
      become durable.
    * ``RECONNECTING``: a connection failed or dropped; waiting (backoff) or trying again.
    """

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


ChangeOrigin = Literal["relay", "device"]


@dataclass(frozen=True, slots=True)
class Change:
    """A change that did not come from this client: from the relay, or another client on this device.

    ``update`` holds the Yjs update as applied; ``missed`` counts notifications dropped
    next to this one because the subscriber read too slowly (a buffer of 1024 filled). The
    document itself never misses anything: read its state again when ``missed`` is set.
    """

    doc: str
    origin: ChangeOrigin
    update: bytes
    missed: int = 0
