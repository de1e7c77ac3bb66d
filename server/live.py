"""What is live in a tenant right now: its peers, its open rooms, its online users.

Everything here is read from the relay's memory at the moment of the call, on this node:

- **peers**: the WebSocket connections of the tenant open on this node (one per document a
  client has open), and how many of them said ``hello`` (they receive broadcasts);
- **rooms**: the tenant's documents open in memory on this node;
- **awareness clients**: the awareness states the open rooms hold. In a cluster a room also
  holds the states of the other nodes' clients, so this counts the clients of the rooms open
  here, wherever they are connected;
- **online users**: the distinct users among those states (:func:`user_of`).

``allows`` narrows every count to the documents a token may read, so a token limited to some
documents learns nothing of the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from syncline.engine.names import KINDS
from syncline.engine.protocol import AwarenessEntry

from .connection import Connection
from .room import Room

DocFilter = Callable[[str], bool]
"""Whether a document (``tenant/kind/id``) is counted."""


def user_of(state: str) -> str | None:
    """The user an awareness state announces, or None for a state that names none.

    A state is the JSON text a client set (y-protocols' convention is
    ``{"user": {"name": ..., "color": ...}}``). Its user is ``user.id`` when that is a
    non-empty string, else ``user.name``, else ``user`` itself when it is a non-empty string;
    ids and names are kept apart (``id:`` / ``name:``), so an id never equals a name. States
    of clients that set no user (cursors only, or ``null``) count as clients, not users.
    """
    try:
        value = json.loads(state)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    user = value.get("user")
    if isinstance(user, str) and user:
        return f"name:{user}"
    if not isinstance(user, dict):
        return None
    if isinstance(user.get("id"), str) and user["id"]:
        return f"id:{user['id']}"
    if isinstance(user.get("name"), str) and user["name"]:
        return f"name:{user['name']}"
    return None


@dataclass
class KindActivity:
    """The live counts of one document kind of a tenant, on this node."""

    rooms: int = 0
    peers: int = 0
    hello_peers: int = 0
    awareness_clients: int = 0
    users: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, int]:
        return {"rooms": self.rooms, "peers": self.peers, "hello_peers": self.hello_peers,
                "awareness_clients": self.awareness_clients, "online_users": len(self.users)}


@dataclass
class TenantActivity:
    """Per kind (every kind listed, zeros included), and per document the peers connected."""

    kinds: dict[str, KindActivity]
    peers_by_document: dict[str, int]

    @property
    def online_users(self) -> int:
        """Distinct users over every kind (a user in a cart and a ledger counts once)."""
        return len(set().union(*(kind.users for kind in self.kinds.values())))


def tenant_activity(
    tenant: str, rooms: Iterable[Room], connections: Iterable[Connection], allows: DocFilter,
) -> TenantActivity:
    """Count what is live of ``tenant`` among ``rooms`` and ``connections`` (see the module's docstring)."""
    kinds = {kind: KindActivity() for kind in KINDS}
    peers: dict[str, int] = {}
    prefix = tenant + "/"
    for connection in connections:
        name = connection.document
        if connection.tenant != tenant or not name.startswith(prefix) or not allows(name):
            continue
        activity = kinds.get(name.split("/")[1])
        if activity is None:
            continue
        activity.peers += 1
        activity.hello_peers += connection.hello
        peers[name] = peers.get(name, 0) + 1
    for room in rooms:
        name = room.name
        if not name.startswith(prefix) or not allows(name):
            continue
        activity = kinds.get(name.split("/")[1])
        if activity is None:
            continue
        activity.rooms += 1
        states = [entry for entry in room.awareness_states() if entry.state != "null"]
        activity.awareness_clients += len(states)
        activity.users.update(_users(states))
    return TenantActivity(kinds, peers)


def _users(states: Iterable[AwarenessEntry]) -> set[str]:
    users = set()
    for entry in states:
        user = user_of(entry.state)
        if user is not None:
            users.add(user)
    return users


def tenant_counts(rooms: Iterable[str], per_tenant: dict[str, int]) -> dict[str, tuple[int, int]]:
    """``{tenant: (connections, open rooms)}`` for every tenant with either (the metrics' source)."""
    counts: dict[str, list[int]] = {tenant: [count, 0] for tenant, count in per_tenant.items() if count > 0}
    for name in rooms:
        tenant = name.split("/", 1)[0]
        counts.setdefault(tenant, [0, 0])[1] += 1
    return {tenant: (pair[0], pair[1]) for tenant, pair in counts.items()}
