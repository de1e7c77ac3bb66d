"""Hostile input against a real relay: every bad frame, name or token gets its close code.

Each case checks four things: the offender is closed with the documented code
(``docs/protocol.md``), peers in the same room and in another room keep syncing
(an edit is stored and acknowledged), the store holds nothing of the offender's,
and the relay process is alive with no traceback in its log.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from syncline.engine import closecodes, protocol
from syncline.engine.tokens import ALGORITHM, ISSUER, issue_token
from syncline.engine.protocol import AwarenessEntry, Kind, varbytes, write_varuint

from harness.hostile import assert_alive, bystanders, closed_with, gauge, rejected, wait_for
from harness.relay_process import SECRET, RelayProcess
from harness.ypeer import ypeer

pytestmark = pytest.mark.anyio

MAX_MESSAGE_BYTES = 8192
AWARENESS_MAX_BYTES = 4096
WS_LAYER_SLACK = 65_536  # serve.py: uvicorn refuses frames over max_message_bytes + 64 KiB itself (1009)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """One relay for the module (small size limits, no idle eviction during the run)."""
    process = RelayProcess(
        tmp_path_factory.mktemp("bad-input") / "relay",
        ["--max-message-bytes", str(MAX_MESSAGE_BYTES), "--awareness-max-bytes", str(AWARENESS_MAX_BYTES),
         "--room-idle-seconds", "600"],
    ).start()
    try:
        yield process
    finally:
        process.stop()


def _valid_update(**content: object) -> bytes:
    doc = Doc()
    doc.get("ops", type=Array).append(dict(content) or {"ok": 1})
    return doc.get_update()


VALID = _valid_update(sku="tee", qty=2)
VALID_SV = b"\x01\x05\x03"  # one client (5) at clock 3
HELLO = protocol.extension({"op": "hello", "acks": True})


def _ext(body: bytes) -> bytes:
    return write_varuint(protocol.MESSAGE_EXTENSION) + varbytes(body)


def _aware(*states: str, client: int = 7, clock: int = 1) -> bytes:
    return protocol.awareness(
        protocol.encode_awareness([AwarenessEntry(client + i, clock, s) for i, s in enumerate(states)])
    )


# -- frames --------------------------------------------------------------------------

INVALID_MESSAGE_FRAMES = {
    "empty frame": b"",
    "truncated varint type": b"\x80",
    "truncated varint subtype": b"\x00\x80",
    "truncated length prefix": b"\x00\x02\x80",
    "unknown message type 7": b"\x07",
    "auth message type 2": b"\x02\x00",
    "unknown type as a big varint": write_varuint(2**40) + b"\x00",
    "varint over 53 bits": b"\xff" * 9 + b"\x01",
    "endless varint": b"\xff" * 64,
    "unknown sync subtype 9": b"\x00\x09\x02\x00\x00",
    "unknown sync subtype as a big varint": b"\x00" + write_varuint(2**45) + b"\x00",
    "update length beyond the frame": b"\x00\x02\x10ab",
    "step 1 length beyond the frame": b"\x00\x00\x7f\x00",
    "awareness length beyond the frame": b"\x01\x05ab",
    "extension length beyond the frame": b"\x64\x09ab",
    "length prefix claiming 2**40": b"\x00\x02" + write_varuint(2**40) + b"x",
    "awareness length claiming 2**40": b"\x01" + write_varuint(2**40) + b"x",
    "trailing garbage after an update": protocol.sync_update(VALID) + b"junk",
    "trailing byte after step 1": protocol.sync_step1(VALID_SV) + b"\x00",
    "trailing byte after query awareness": b"\x03\x00",
    "step 1 with a malformed state vector": protocol.sync_step1(b"\x05\x01"),
    "step 1 with an empty state vector": protocol.sync_step1(b""),
}

GARBAGE_UPDATE_FRAMES = {
    "garbage update": protocol.sync_update(b"\x01\x02\x03garbage"),
    "garbage sync step 2": protocol.sync_step2(b"\xff\xff\xff\xff"),
    "truncated update": protocol.sync_update(VALID[:-4]),
    "update with a huge struct count": protocol.sync_update(write_varuint(2**40) + b"\x00"),
    "empty update payload": protocol.sync_update(b""),
}

MALFORMED_AWARENESS_FRAMES = {
    "empty awareness payload": protocol.awareness(b""),
    "awareness claiming more entries than bytes": protocol.awareness(write_varuint(2**40)),
    "awareness entry cut short": protocol.awareness(b"\x02\x01\x01\x02{}"),
    "awareness trailing bytes": protocol.awareness(
        protocol.encode_awareness([AwarenessEntry(1, 1, "{}")]) + b"\x00"),
    "awareness state not UTF-8": protocol.awareness(b"\x01\x01\x01\x02\xff\xfe"),
    "awareness state not JSON": _aware('{"user": '),
    "awareness state NaN": _aware("NaN"),
    "awareness state empty string": _aware(""),
    "awareness state nested too deep": _aware("[" * 1500 + "]" * 1500),
}

BAD_EXTENSION_FRAMES = {
    "extension body not msgpack": _ext(b"\xc1"),
    "extension body truncated msgpack": _ext(b"\x82\xa2op"),
    "extension body empty": _ext(b""),
    "extension body a list": _ext(b"\x92\xa2op\xa5hello"),
    "extension body a string": _ext(b"\xa5hello"),
    "extension map without op": _ext(b"\x81\xa4acks\xc3"),
    "extension op not a string": _ext(b"\x81\xa2op\x01"),
    "extension with integer keys": _ext(b"\x81\x01\x01"),
    "extension unknown op": protocol.extension({"op": "ack", "n": 5}),
    "extension trailing bytes after the map": _ext(b"\x81\xa2op\xa5hello\x00"),
    "extension nested too deep": _ext(b"\x91" * 3000 + b"\x01"),
    "extension array claiming 2**32 items": _ext(b"\xdd\xff\xff\xff\xff"),
    "extension op with invalid UTF-8": _ext(b"\x81\xa2op\xa2\xff\xfe"),
    "extension over its 4 KiB limit": protocol.extension(
        {"op": "hello", "pad": "x" * protocol.MAX_EXTENSION_BYTES}),
}


@pytest.mark.parametrize("frame", INVALID_MESSAGE_FRAMES.values(), ids=INVALID_MESSAGE_FRAMES.keys())
async def test_a_malformed_frame_closes_only_its_sender_with_4400(relay: RelayProcess, frame: bytes) -> None:
    room = "acme/cart/malformed"
    async with bystanders(relay, room) as watch:
        assert await closed_with(relay.url_for(room), frame) == closecodes.INVALID_MESSAGE
        await watch.check()


@pytest.mark.parametrize("frame", GARBAGE_UPDATE_FRAMES.values(), ids=GARBAGE_UPDATE_FRAMES.keys())
async def test_a_well_framed_garbage_update_closes_with_4422_and_stores_nothing(
    relay: RelayProcess, frame: bytes
) -> None:
    room = "acme/cart/garbage"
    async with bystanders(relay, room) as watch:
        assert await closed_with(relay.url_for(room), HELLO, frame) == closecodes.INVALID_UPDATE
        await watch.check()


@pytest.mark.parametrize("seed", range(6))
async def test_random_bytes_close_with_4400_or_4422(relay: RelayProcess, seed: int) -> None:
    rng = random.Random(seed)
    frame = bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
    room = "acme/stock/random"
    async with bystanders(relay, room) as watch:
        code = await closed_with(relay.url_for(room), frame)
        assert code in (closecodes.INVALID_MESSAGE, closecodes.INVALID_UPDATE)
        await watch.check()


async def test_a_text_frame_closes_with_4400(relay: RelayProcess) -> None:
    room = "acme/cart/text"
    before = rejected(relay)
    async with bystanders(relay, room) as watch:
        assert await closed_with(relay.url_for(room), '{"type": "sync"}') == closecodes.INVALID_MESSAGE
        await watch.check()
    assert (rejected(relay) - before) == {"text_frame": 1}


async def test_an_oversized_frame_closes_with_4413_and_is_not_stored(relay: RelayProcess) -> None:
    room = "acme/cart/big"
    big = _valid_update(pad="x" * MAX_MESSAGE_BYTES)  # a valid update, just too large
    before = rejected(relay)
    async with bystanders(relay, room) as watch:
        assert await closed_with(relay.url_for(room), protocol.sync_update(big)) == closecodes.TOO_LARGE
        await watch.check()
    assert (rejected(relay) - before) == {"too_large": 1}


def _update_frame_of_size(size: int) -> tuple[bytes, bytes]:
    """A valid sync update frame of exactly ``size`` bytes, and its update."""
    for pad in range(max(0, size - 128), size):
        doc = Doc(client_id=4242)  # fixed: a random client id varies the update's length by a byte or so
        doc.get("ops", type=Array).append({"pad": "x" * pad})
        update = doc.get_update()
        if len(frame := protocol.sync_update(update)) == size:
            return frame, update
    raise AssertionError(f"no update frame of {size} bytes")


async def test_the_size_limit_is_exact(relay: RelayProcess) -> None:
    room = "acme/cart/edge"
    at_limit, stored = _update_frame_of_size(MAX_MESSAGE_BYTES)
    over_limit, _ = _update_frame_of_size(MAX_MESSAGE_BYTES + 1)
    async with bystanders(relay, room) as watch:
        async with ypeer(relay.url_for(room), acks=True) as writer:
            await writer.ws.send(at_limit)
            await writer.wait_acked(2)
        assert await closed_with(relay.url_for(room), over_limit) == closecodes.TOO_LARGE
        expected = Doc()
        expected.apply_update(stored)  # the room was empty: the bystander holds exactly this
        assert watch.same is not None
        await watch.same.wait_until(lambda d: d.get_state() == expected.get_state())
        watch.same_state = expected.get_state()
        await watch.check(also_stored=[(room, stored)])


async def test_a_frame_far_beyond_the_limit_is_refused_by_the_websocket_layer_with_1009(
    relay: RelayProcess,
) -> None:
    room = "acme/cart/huge"
    huge = protocol.sync_update(b"\x00" * (MAX_MESSAGE_BYTES + WS_LAYER_SLACK + 1024))
    async with bystanders(relay, room) as watch:
        assert await closed_with(relay.url_for(room), huge) == 1009  # documented in docs/protocol.md
        await watch.check()


async def test_an_oversized_awareness_update_closes_with_4413(relay: RelayProcess) -> None:
    room = "acme/cart/aware-big"
    frame = _aware(json.dumps({"name": "x" * AWARENESS_MAX_BYTES}))
    assert len(frame) < MAX_MESSAGE_BYTES  # under the message limit, over the awareness limit
    before = rejected(relay)
    async with bystanders(relay, room) as watch:
        assert await closed_with(relay.url_for(room), frame) == closecodes.TOO_LARGE
        await watch.check()
        assert watch.same is not None and watch.same.awareness == []  # never relayed
    assert (rejected(relay) - before) == {"awareness_too_large": 1}


@pytest.mark.parametrize("frame", MALFORMED_AWARENESS_FRAMES.values(), ids=MALFORMED_AWARENESS_FRAMES.keys())
async def test_a_malformed_awareness_update_closes_with_4400_and_is_not_relayed(
    relay: RelayProcess, frame: bytes
) -> None:
    room = "acme/cart/aware-bad"
    async with bystanders(relay, room) as watch:
        assert await closed_with(relay.url_for(room), frame) == closecodes.INVALID_MESSAGE
        await watch.check()
        assert watch.same is not None and watch.same.awareness == []
        # A joiner after the offence is greeted with no awareness state from the offender.
        async with ypeer(relay.url_for(room)) as late:
            assert late.awareness == []


@pytest.mark.parametrize("frame", BAD_EXTENSION_FRAMES.values(), ids=BAD_EXTENSION_FRAMES.keys())
async def test_a_bad_extension_message_closes_with_4400(relay: RelayProcess, frame: bytes) -> None:
    room = "acme/stock/ext"
    async with bystanders(relay, room) as watch:
        assert await closed_with(relay.url_for(room), frame) == closecodes.INVALID_MESSAGE
        await watch.check()


async def test_odd_but_valid_frames_are_answered_without_closing(relay: RelayProcess) -> None:
    """The strictness has no false positives: valid rarities keep the connection open."""
    room = "acme/cart/odd"
    async with bystanders(relay, room) as watch:
        async with connect(relay.url_for(room), max_size=None) as ws:
            await ws.send(b"\x03")  # query awareness with nobody present: no answer
            await ws.send(protocol.extension({"op": "hello", "acks": "yes"}))  # welcome; acks only for true
            await ws.send(protocol.awareness(b"\x00"))  # zero entries
            await ws.send(presence := _aware('{"user":{"name":"ann","colour":"#ff0"}}'))  # relayed as is
            await ws.send(protocol.sync_update(b"\x00\x00"))  # empty update: not stored (and not acked here)
            await ws.send(protocol.sync_step1(b"\x00"))
            extensions = []
            with anyio.fail_after(5):
                async for frame in ws:
                    message = protocol.decode(frame)  # type: ignore[arg-type]
                    if message.kind is Kind.EXTENSION:
                        extensions.append(protocol.decode_extension(message.payload))
                    if message.kind is Kind.STEP2:
                        break
            assert extensions == [{"op": "welcome", "version": 1, "acks": False, "writes": 0}]
            assert watch.same is not None
            relayed = [protocol.awareness(b"\x00"), presence]  # to the bystander, in order, untouched
            with anyio.fail_after(5):
                while [protocol.awareness(p) for p in watch.same.awareness[:2]] != relayed:
                    await anyio.sleep(0.01)
        await watch.check()


# -- document names on the URL path -----------------------------------------------------

BAD_PATHS = {
    "dot-dot id": "acme/cart/..",
    "dot id": "acme/cart/.",
    "encoded dot-dot": "acme/cart/%2e%2e",
    "encoded slash in the tenant": "acme%2Fcart/c-1",
    "encoded slash in the id": "acme/cart/a%2Fb",
    "encoded slash joining kind and id": "acme/cart%2Fc-1",
    "double encoding": "acme/cart/%252F",
    "encoded NUL": "acme/cart/c-1%00",
    "fullwidth tenant": "ａｃｍｅ/cart/c-1",
    "fullwidth id": "acme/cart/ｃ-1",
    "cyrillic look-alike tenant": "аcme/cart/c-1",
    "unknown kind": "acme/basket/c-1",
    "kind in the wrong case": "acme/Cart/c-1",
    "200-character id": "acme/cart/" + "c" * 200,
    "id starting with a dash": "acme/cart/-c",
    "encoded space": "acme/cart/c%201",
    "dot-dot segment in the middle": "acme/../acme/cart/c-1",
    "too many segments": "acme/cart/c-1/extra",
    "empty id": "acme/cart/",
    "empty segment": "acme//cart/c-1",
}


@pytest.mark.parametrize("path", BAD_PATHS.values(), ids=BAD_PATHS.keys())
async def test_a_bad_document_name_closes_with_4404_and_opens_no_room(relay: RelayProcess, path: str) -> None:
    token = relay.token("acme")  # acme/*: only the name can be wrong
    before = rejected(relay)
    async with bystanders(relay, "acme/cart/c-1") as watch:
        url = f"ws://127.0.0.1:{relay.port}/v1/sync/{path}?token={token}"
        assert await closed_with(url) == closecodes.INVALID_DOCUMENT_NAME
        await watch.check()
    assert (rejected(relay) - before) == {"invalid_document_name": 1}


async def test_a_128_character_id_is_still_a_valid_name(relay: RelayProcess) -> None:
    async with ypeer(relay.url_for("acme/cart/" + "c" * 128), acks=True) as peer:
        await peer.edit(lambda d: d.get("ops", type=Array).append({"long": 1}))
        await peer.wait_acked(2)


@pytest.mark.parametrize("raw", [b"acme/cart/\xef\xbd\x83-1", b"acme/cart/c-1\x00", b"acme/cart/c 1"])
async def test_raw_bytes_no_client_should_send_are_refused_at_the_http_layer(
    relay: RelayProcess, raw: bytes
) -> None:
    """Unencoded non-ASCII, NUL or space in the request line: uvicorn answers 400 before any route."""
    async with bystanders(relay, "acme/cart/c-1") as watch:
        status_line = await anyio.to_thread.run_sync(_raw_handshake, relay, b"/v1/sync/" + raw)
        assert status_line.startswith(b"HTTP/1.1 400"), status_line
        await watch.check()


def _raw_handshake(relay: RelayProcess, target: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as sock:
        key = base64.b64encode(b"0123456789abcdef")
        sock.sendall(
            b"GET " + target + b"?token=" + relay.token("acme").encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        return sock.recv(4096).split(b"\r\n", 1)[0]


# -- tokens ---------------------------------------------------------------------------------


def _claims(**extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": ISSUER, "tenant": "acme", "docs": ["acme/*"], "ro": False, "iat": now, **extra}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


OTHER_SECRET = "another-secret-" + "y" * 40
NONE_HEADER = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())


def _unsigned(claims: dict[str, object], signature: str = "") -> str:
    return f"{NONE_HEADER}.{_b64(json.dumps(claims).encode())}.{signature}"


TOKEN_CASES = {
    "missing": (None, closecodes.UNAUTHORIZED, "missing_token"),
    "empty": ("", closecodes.UNAUTHORIZED, "missing_token"),
    "garbage": ("garbage", closecodes.UNAUTHORIZED, "invalid_token"),
    "three garbage segments": ("aaa.bbb.ccc", closecodes.UNAUTHORIZED, "invalid_token"),
    "signed with another secret": (
        issue_token(OTHER_SECRET, "acme", ["acme/*"]), closecodes.UNAUTHORIZED, "invalid_token"),
    "alg none, no signature": (_unsigned(_claims()), closecodes.UNAUTHORIZED, "invalid_token"),
    "alg none, fake signature": (_unsigned(_claims(), "c2ln"), closecodes.UNAUTHORIZED, "invalid_token"),
    "HS384 with the right secret": (
        jwt.encode(_claims(), SECRET, algorithm="HS384"), closecodes.UNAUTHORIZED, "invalid_token"),
    "wrong issuer": (jwt.encode(_claims(iss="other"), SECRET, algorithm=ALGORITHM), closecodes.UNAUTHORIZED,
                     "invalid_token"),
    "expired": (jwt.encode(_claims(exp=int(time.time()) - 60), SECRET, algorithm=ALGORITHM),
                closecodes.TOKEN_EXPIRED, "token_expired"),
    "another tenant's token": (
        issue_token(SECRET, "globex", ["globex/*"]), closecodes.FORBIDDEN, "forbidden"),
    "a stock pattern used on a cart": (issue_token(SECRET, "acme", ["acme/stock/*"]), closecodes.FORBIDDEN,
                                       "forbidden"),
    "another cart's token": (
        issue_token(SECRET, "acme", ["acme/cart/c-2"]), closecodes.FORBIDDEN, "forbidden"),
    "claims another tenant's docs": (
        jwt.encode(_claims(docs=["globex/*"]), SECRET, algorithm=ALGORITHM), closecodes.UNAUTHORIZED,
        "invalid_token"),
}


@pytest.mark.parametrize(("token", "code", "reason"), TOKEN_CASES.values(), ids=TOKEN_CASES.keys())
async def test_a_bad_token_is_refused_with_its_close_code(
    relay: RelayProcess, token: str | None, code: int, reason: str
) -> None:
    room = "acme/cart/tok"
    before = rejected(relay)
    async with bystanders(relay, room) as watch:
        url = relay.url(room) if token is None else f"{relay.url(room)}?token={token}"
        # The offender would write if it got in; nothing of it may reach the store.
        assert await closed_with(url, protocol.sync_update(VALID)) == code
        await watch.check()
    assert (rejected(relay) - before) == {reason: 1}


async def test_a_bad_bearer_header_is_refused_like_a_bad_query_token(relay: RelayProcess) -> None:
    room = "acme/cart/tok"
    async with bystanders(relay, room) as watch:
        headers = {"Authorization": "Bearer " + issue_token(OTHER_SECRET, "acme", ["acme/*"])}
        assert await closed_with(relay.url(room), additional_headers=headers) == closecodes.UNAUTHORIZED
        await watch.check()


async def test_a_token_that_expires_during_the_session_closes_it_with_4419(relay: RelayProcess) -> None:
    room = "acme/cart/expiring"
    token = jwt.encode(_claims(exp=int(time.time()) + 2), SECRET, algorithm=ALGORITHM)  # 1 to 2 s left
    async with bystanders(relay, room) as watch:
        async with ypeer(f"{relay.url(room)}?token={token}", acks=True) as peer:
            with anyio.fail_after(5):
                while peer.close_code is None:
                    await anyio.sleep(0.05)
            assert peer.close_code == closecodes.TOKEN_EXPIRED
        await watch.check()


async def test_a_read_only_peer_writing_is_closed_with_4405_and_nothing_is_stored(
    relay: RelayProcess,
) -> None:
    room = "acme/cart/ro"
    sneaky = _valid_update(sneaky=1)
    for write in (protocol.sync_update(sneaky), protocol.sync_step2(sneaky)):
        async with bystanders(relay, room) as watch:
            # The empty step 2 every Yjs client sends is fine; a non-empty one is a write.
            url = relay.url_for(room, read_only=True)
            code = await closed_with(url, HELLO, protocol.sync_step2(b"\x00\x00"), write)
            assert code == closecodes.READ_ONLY
            await watch.check()
    assert all(b"sneaky" not in blob for _doc, blob in relay.stored_rows())


async def test_offenders_leave_no_connection_behind(relay: RelayProcess) -> None:
    """After all the refusals above (or alone), the relay counts only live peers."""
    def connections() -> float:
        return gauge(relay, "syncline_connections")

    await wait_for(connections, 0.0)
    async with ypeer(relay.url_for("acme/cart/after"), acks=True):
        assert connections() == 1.0
    await wait_for(connections, 0.0)


# -- a small protocol fuzz --------------------------------------------------------------------


def _seed_frames() -> list[bytes]:
    doc = Doc()
    doc.get("ops", type=Array).append({"sku": "tee", "qty": 2})
    doc.get("meta", type=Map)["note"] = "hi"
    update = doc.get_update()
    return [
        protocol.sync_step1(doc.get_state()),
        protocol.sync_step2(update),
        protocol.sync_update(update),
        protocol.sync_update(b"\x00\x00"),
        _aware('{"user":{"name":"ann"}}'),
        b"\x03",
        protocol.extension({"op": "hello", "acks": True}),
    ]


SEEDS = _seed_frames()
ALLOWED = {closecodes.INVALID_MESSAGE, closecodes.INVALID_UPDATE, closecodes.TOO_LARGE}


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64))
    frame = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        mutation = draw(st.sampled_from(["flip", "truncate", "huge varint", "set byte", "append"]))
        at = draw(st.integers(0, max(len(frame) - 1, 0)))
        if mutation == "flip" and frame:
            frame[at] ^= 1 << draw(st.integers(0, 7))
        elif mutation == "truncate":
            del frame[at:]
        elif mutation == "huge varint":
            frame[at:at] = write_varuint(draw(st.sampled_from([2**31, 2**40, 2**53 - 1, 2**60])))
        elif mutation == "set byte" and frame:
            frame[at] = draw(st.integers(0, 255))
        elif mutation == "append":
            frame += draw(st.binary(min_size=1, max_size=8))
    return bytes(frame)


def _outcome(url: str, frame: bytes) -> int | str:
    """Send ``frame`` then a sync step 1; "handled" if its step 2 comes back, else the close code."""
    with sync_connect(url, max_size=None, open_timeout=5) as ws:
        try:
            ws.send(frame)
            ws.send(protocol.sync_step1(b"\x00"))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                reply = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
                assert isinstance(reply, bytes)
                if protocol.decode(reply).kind is Kind.STEP2:
                    return "handled"
        except ConnectionClosed:
            assert ws.close_code is not None
            return ws.close_code
    raise AssertionError("the relay neither answered nor closed")


@pytest.fixture
def fuzz_relay(tmp_path: Path) -> Iterator[RelayProcess]:
    process = RelayProcess(tmp_path / "fuzz").start()
    try:
        yield process
    finally:
        process.stop()


def test_mutated_frames_are_handled_or_closed_with_a_documented_code(fuzz_relay: RelayProcess) -> None:
    url = fuzz_relay.url_for("acme/cart/fuzz")
    seen: set[int | str] = set()

    @settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
              deadline=None)
    @given(frame=hostile_frames())
    def one_frame(frame: bytes) -> None:
        outcome = _outcome(url, frame)
        seen.add(outcome)
        assert outcome == "handled" or outcome in ALLOWED, f"{frame.hex()} -> {outcome}"
        assert fuzz_relay.process is not None and fuzz_relay.process.poll() is None

    one_frame()
    assert seen & ALLOWED, seen  # the fuzz did reach the error paths

    async def bystander_still_syncs() -> None:
        async with ypeer(fuzz_relay.url_for("acme/cart/fuzz"), acks=True) as same, \
                ypeer(fuzz_relay.url_for("acme/stock/fuzz-neighbour"), acks=True) as other:
            for peer in (same, other):
                await peer.edit(lambda d: d.get("ops", type=Array).append({"after": "fuzz"}))
                await peer.wait_acked(2)

    anyio.run(bystander_still_syncs)
    assert_alive(fuzz_relay)
