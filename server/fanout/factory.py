"""Choosing the fan-out a relay runs with, from its settings.

``fanout = "none"`` (the default) is one node and never needs Redis; a ``redis://``
URL selects :class:`~syncline.server.fanout.redis.RedisFanout`, imported only then.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import MissingDriver
from ..metrics import Metrics
from ..settings import Settings
from .base import Fanout
from .local import LocalFanout


def create_fanout(settings: Settings, metrics: Metrics | None = None) -> Fanout:
    if settings.fanout == "none":
        return LocalFanout()
    try:
        from .redis import RedisFanout
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "redis":
            raise
        raise MissingDriver("--fanout redis://", "Redis (redis)", "cluster") from None

    return RedisFanout(settings.fanout, prefix=settings.fanout_prefix, metrics=metrics)


def describe_fanout(settings: Settings) -> str:
    """Where the fan-out goes, for banners and logs: never a password."""
    if settings.fanout == "none":
        return "none (single node)"
    try:
        parts = urlsplit(settings.fanout)
        where = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    except ValueError:
        where = "redis://?"
    return f"{where} (channels {settings.fanout_prefix}:*)"
