"""Logging: plain text or one JSON object per line; tokens are redacted everywhere.

Both forms carry a record's structured fields (the ``extra`` of a logging call: ``doc``,
``error``, ``reason``, ``cause``, ``request_id``...): JSON as members of the object, plain
text as ``key=value`` after the message (values with spaces, quotes or control characters
JSON-quoted). Neither carries colour codes: uvicorn's ``color_message`` is dropped and any
ANSI escape is stripped.

An expected outage (the store or Redis unreachable, a peer gone mid-request) is logged as
one line: the traceback of such an exception is replaced by an ``error`` field naming it
(:func:`expected_outage`). Tracebacks stay for everything else.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import IO, Any

_TOKEN = re.compile(r"((?:token|access_token)=)[^&\s\"']+|(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_DROPPED = {"color_message"}
"""Fields never shown: uvicorn's copy of the message with colour codes."""
_BARE = re.compile(r"[A-Za-z0-9._~:/{}@+\-]+")
"""A plain-text value shown as it is; anything else is JSON-quoted."""
SHOWN = "_shown"
"""A record attribute naming the fields its message already shows: plain text leaves them out
(JSON keeps every field)."""


def redact(text: str) -> str:
    """Replace token values in query strings and Authorization headers by ``[redacted]``."""
    return _TOKEN.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class RedactTokens(logging.Filter):
    """Uvicorn logs request paths, and browsers pass tokens in the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(str(record.msg))
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        return True


class DropUvicornAccess(logging.Filter):
    """Uvicorn logs each WebSocket handshake and the websockets library each open and close at info,
    with the raw path and query: the access log (:mod:`.access`) has one line per connection instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "uvicorn.error" or record.levelno > logging.INFO:
            return True
        message = str(record.msg)
        handshake = message.startswith('%s - "WebSocket %s"')
        return not (handshake or message in ("connection open", "connection closed"))


def _expected_types() -> tuple[type[BaseException], ...]:
    from starlette.requests import ClientDisconnect
    from starlette.websockets import WebSocketDisconnect

    from .fanout.base import FanoutUnavailable
    from .store import StoreUnavailable

    types: list[type[BaseException]] = [StoreUnavailable, FanoutUnavailable, ConnectionError, TimeoutError,
                                        ClientDisconnect, WebSocketDisconnect]
    try:  # the cluster drivers are optional
        import redis.exceptions

        types += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:
        pass
    try:
        import asyncpg

        types += [asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError]
    except ImportError:
        pass
    return tuple(types)


_EXPECTED: tuple[type[BaseException], ...] | None = None


def expected_outage(exc: BaseException | None) -> bool:
    """True if ``exc``, or an exception it was raised from, is an outage the relay expects and
    handles (store or Redis unreachable, a peer gone): its traceback tells an operator nothing."""
    global _EXPECTED
    if _EXPECTED is None:
        _EXPECTED = _expected_types()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, _EXPECTED):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The record's structured fields (its ``extra``), as they are to be shown.

    An expected outage's exception becomes an ``error`` field (unless the record has one)
    and its traceback is dropped from the record.
    """
    fields: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key not in _STANDARD and key not in _DROPPED and not key.startswith("_"):
            fields[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
    if record.exc_info and record.exc_info[1] is not None and expected_outage(record.exc_info[1]):
        fields.setdefault("error", _error_text(record.exc_info[1]))
        record.exc_info = None
        record.exc_text = None
    return fields


def _plain_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``, one line unless a traceback follows."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = fields_of(record)
        shown = getattr(record, SHOWN, ())
        line = strip_ansi(super().format(record)).rstrip("\n")  # uvicorn ends some messages with one
        tail = " ".join(f"{key}={_plain_value(value)}" for key, value in fields.items() if key not in shown)
        if not tail:
            return line
        first, newline, rest = line.partition("\n")  # the fields stay on the message's line
        return f"{first} {tail}{newline}{rest}"


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = fields_of(record)
        body: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": strip_ansi(record.getMessage()).rstrip("\n"),
        }
        for key, value in fields.items():
            body[key] = strip_ansi(value) if isinstance(value, str) else value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False)


def configure_logging(json_lines: bool, level: str, stream: IO[str] | None = None) -> None:
    """Send every record at ``level`` or above to ``stream`` (stderr), as JSON lines or plain text."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactTokens())
    handler.addFilter(DropUvicornAccess())
    handler.setFormatter(JSONFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
