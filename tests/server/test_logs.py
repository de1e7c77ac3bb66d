"""The relay's log lines as :func:`configure_logging` writes them: structured fields in plain
text too, no colour codes, one line without a traceback for an expected outage."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from starlette.requests import ClientDisconnect

from syncline.server.fanout.base import FanoutUnavailable
from syncline.server.logs import configure_logging
from syncline.server.store import StoreUnavailable


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    try:
        yield out
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _unavailable() -> StoreUnavailable:
    """A store error as the store raises it: from the OS error under it."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise StoreUnavailable("cannot reach 127.0.0.1:5432") from exc
    except StoreUnavailable as exc:
        return exc


def test_plain_text_shows_the_structured_fields_as_key_value(stream: io.StringIO) -> None:
    configure_logging(False, "info", stream)
    log = logging.getLogger("syncline.room")
    log.warning("compaction failed; the log stays as it is",
                extra={"doc": "acme/cart/c-1", "error": "disk full"})
    fanout = logging.getLogger("syncline.fanout")
    fanout.warning("fan-out subscription lost; reconnecting",
                   extra={"error": "ConnectionError: Error 111", "reason": "gone"})
    first, second = stream.getvalue().splitlines()
    assert first.endswith('WARNING syncline.room: compaction failed; the log stays as it is '
                          'doc=acme/cart/c-1 error="disk full"')
    assert second.endswith('WARNING syncline.fanout: fan-out subscription lost; reconnecting '
                           'error="ConnectionError: Error 111" reason=gone')


def test_a_value_with_a_newline_cannot_forge_a_line(stream: io.StringIO) -> None:
    configure_logging(False, "info", stream)
    logging.getLogger("syncline.rest").info("cart merged", extra={"cart": "c-1\nINFO forged"})
    assert stream.getvalue().count("\n") == 1
    assert 'cart="c-1\\nINFO forged"' in stream.getvalue()


@pytest.mark.parametrize("json_lines", [False, True])
def test_an_expected_outage_is_one_line_without_a_traceback(stream: io.StringIO, json_lines: bool) -> None:
    configure_logging(json_lines, "info", stream)
    log = logging.getLogger("syncline.connection")
    log.error("store unavailable; refusing the write", exc_info=_unavailable(),
              extra={"doc": "acme/cart/c-1"})
    log.warning("fan-out lost", exc_info=FanoutUnavailable("redis down"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, stream.getvalue()
    assert "Traceback" not in stream.getvalue()
    if json_lines:
        first = json.loads(lines[0])
        assert first["doc"] == "acme/cart/c-1"
        assert first["error"] == "StoreUnavailable: cannot reach 127.0.0.1:5432"
        assert "exc" not in first
    else:
        assert lines[0].endswith('doc=acme/cart/c-1 error="StoreUnavailable: cannot reach 127.0.0.1:5432"')
        assert lines[1].endswith('error="FanoutUnavailable: fan-out unavailable: redis down"')


@pytest.mark.parametrize("json_lines", [False, True])
def test_uvicorns_report_of_a_disconnected_client_is_one_line(stream: io.StringIO, json_lines: bool) -> None:
    configure_logging(json_lines, "info", stream)
    logging.getLogger("uvicorn.error").error("Exception in ASGI application\n", exc_info=ClientDisconnect())
    (line,) = stream.getvalue().splitlines()
    if json_lines:
        record = json.loads(line)
        assert (record["msg"], record["error"]) == ("Exception in ASGI application", "ClientDisconnect")
    else:
        assert line.endswith("ERROR uvicorn.error: Exception in ASGI application error=ClientDisconnect")


def test_an_unexpected_error_keeps_its_traceback(stream: io.StringIO) -> None:
    configure_logging(False, "info", stream)
    try:
        {}["missing"]
    except KeyError as exc:
        logging.getLogger("syncline.rest").error("unhandled error", exc_info=exc,
                                                 extra={"doc": "acme/cart/c-1"})
    text = stream.getvalue()
    assert text.splitlines()[0].endswith("unhandled error doc=acme/cart/c-1")
    assert "Traceback (most recent call last)" in text and "KeyError: 'missing'" in text


def test_json_lines_drop_colour_codes_and_uvicorns_coloured_copy(stream: io.StringIO) -> None:
    configure_logging(True, "info", stream)
    coloured = "Started server process [\x1b[36m%d\x1b[0m]"
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.info("Started server process [%d]", 42, extra={"color_message": coloured})
    logging.getLogger("syncline.room").info("\x1b[1mbold\x1b[0m", extra={"doc": "\x1b[31macme/cart/c\x1b[0m"})
    assert "\x1b" not in stream.getvalue() and "\\u001b" not in stream.getvalue()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "Started server process [42]" and "color_message" not in first
    assert (second["msg"], second["doc"]) == ("bold", "acme/cart/c")


def test_uvicorns_websocket_handshake_lines_are_left_out(stream: io.StringIO) -> None:
    configure_logging(False, "info", stream)
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", "/v1/sync/acme/cart/c?token=x")
    uvicorn.info("connection open")
    uvicorn.info("connection closed")
    uvicorn.info("Application startup complete.")
    assert stream.getvalue().splitlines()[0].endswith("INFO uvicorn.error: Application startup complete.")
    assert len(stream.getvalue().splitlines()) == 1
