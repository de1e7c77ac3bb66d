"""A y-websocket protocol fuzzer against a live relay, shared by the CI test and the long run.

:func:`make_case` draws one hostile case (one or a few frames) from a ``random.Random``;
the CI test hands it Hypothesis's ``st.randoms()``, ``benchmarks/fuzz_relay.py`` a seeded
``random.Random`` per case. :func:`expected_outcome` says what the relay must answer,
from the codec's rules (docs/protocol.md): ``"handled"`` or the exact close code, and
which updates it must store. :func:`run_case` sends the frames over a real WebSocket,
then a sync step 1: a relay that answers with its step 2 handled everything; otherwise
its close code is the outcome.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import anyio
import msgpack
from pycrdt import Array, Doc, Map
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from harness.hostile import gauge, wait_for
from harness.probes import MIB, StoreDelta, rss_bytes
from harness.relay_process import RelayProcess
from syncline.engine import InvalidStateVector, InvalidUpdate, apply_update, closecodes, encode_diff, protocol
from syncline.engine import validate_update
from syncline.engine.errors import ProtocolError
from syncline.engine.protocol import Kind, varbytes, write_varuint
from syncline.engine.sync import decode_state_vector, merge

HELD_UPDATES_MAX = 64  # the relay's default --held-updates-max
WS_LAYER_SLACK = 65_536  # serve.py: uvicorn refuses frames over max_message_bytes + 64 KiB itself
ABNORMAL = 1006
MESSAGE_TOO_BIG = 1009


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 8192
    awareness_max_bytes: int = 2048

    def flags(self) -> list[str]:
        return ["--max-message-bytes", str(self.max_message_bytes),
                "--awareness-max-bytes", str(self.awareness_max_bytes)]


def fuzz_relay_flags(limits: Limits) -> list[str]:
    """No compaction or eviction during the run, so the store can be compared row by row."""
    return [*limits.flags(), "--compaction-updates", "1000000000", "--room-idle-seconds", "86400",
            "--rate-burst", "100000"]


@dataclass
class Case:
    category: str
    frames: list[bytes | str]
    expected: int | str | None = None
    """What the category promises, when it promises one thing; checked against the oracle."""

    def describe(self) -> str:
        shown = [f.hex() if isinstance(f, bytes) else f"text:{f!r}" for f in self.frames]
        return f"{self.category}: " + " | ".join(s if len(s) < 400 else s[:400] + f"...({len(s)})" for s in shown)


@dataclass
class Expectation:
    outcome: int | str
    stored: list[bytes] = field(default_factory=list)
    """Updates the relay must store for this case (valid, non-empty writes before any close)."""


# -- the oracle ---------------------------------------------------------------------------


def expected_outcome(frames: list[bytes | str], limits: Limits, room: Doc | None = None) -> Expectation:
    """What the relay must do with ``frames``, in order (docs/protocol.md), in a room holding ``room``.

    A write that depends on clocks the room lacks is held, not stored: it is stored once a
    later write of the case fills the gap (alone, or with the other held writes merged into
    one), and dropped with the connection otherwise.
    """
    stored: list[bytes] = []
    model = Doc()
    if room is not None:
        model.apply_update(room.get_update())
    held: list[bytes] = []
    scratch = Doc()

    def land(update: bytes) -> None:
        apply_update(model, update)
        stored.append(update)

    def clocks() -> dict[int, int]:
        return decode_state_vector(model.get_state())

    def together() -> None:
        if len(held) < 2:
            return
        try:
            merged = merge(held)
            shape = validate_update(merged)
        except InvalidUpdate:
            return
        if not shape.missing(clocks()):
            land(merged)
            held.clear()

    def retry() -> None:
        progress = True
        while progress and held:
            progress = False
            for update in list(held):
                if not validate_update(update).missing(clocks()):
                    land(update)
                    held.remove(update)
                    progress = True
        together()

    for frame in frames:
        if isinstance(frame, str):
            return Expectation(closecodes.INVALID_MESSAGE, stored)
        if len(frame) > limits.max_message_bytes + WS_LAYER_SLACK:
            return Expectation(MESSAGE_TOO_BIG, stored)
        if len(frame) > limits.max_message_bytes:
            return Expectation(closecodes.TOO_LARGE, stored)
        try:
            message = protocol.decode(frame)
        except ProtocolError:
            return Expectation(closecodes.INVALID_MESSAGE, stored)
        kind = message.kind
        if kind is Kind.STEP1:
            try:
                encode_diff(scratch, message.payload)
            except InvalidStateVector:
                return Expectation(closecodes.INVALID_MESSAGE, stored)
        elif message.is_write:
            if message.payload == b"\x00\x00":
                continue
            try:
                shape = validate_update(message.payload)
                apply_update(Doc(), message.payload)
            except InvalidUpdate:
                return Expectation(closecodes.INVALID_UPDATE, stored)
            if shape.missing(clocks()):
                if len(held) >= HELD_UPDATES_MAX:
                    return Expectation(closecodes.OUT_OF_ORDER, stored)
                held.append(message.payload)
                together()
            else:
                land(message.payload)
                retry()
        elif kind is Kind.AWARENESS:
            if len(message.payload) > limits.awareness_max_bytes:
                return Expectation(closecodes.TOO_LARGE, stored)
            try:
                protocol.decode_awareness(message.payload)
            except ProtocolError:
                return Expectation(closecodes.INVALID_MESSAGE, stored)
        elif kind is Kind.EXTENSION:
            try:
                body = protocol.decode_extension(message.payload)
            except ProtocolError:
                return Expectation(closecodes.INVALID_MESSAGE, stored)
            if body["op"] != "hello":
                return Expectation(closecodes.INVALID_MESSAGE, stored)
    return Expectation("handled", stored)


# -- the generator ---------------------------------------------------------------------------

v = write_varuint


def _update(rnd: random.Random) -> bytes:
    doc = Doc(client_id=rnd.randrange(1, 2**32))
    doc.get("ops", type=Array).append({"sku": rnd.choice(["tee", "mug", "cap"]), "qty": rnd.randint(1, 9)})
    if rnd.random() < 0.5:
        doc.get("meta", type=Map)["note"] = "x" * rnd.randint(0, 40)
    return doc.get_update()


def _seeds(rnd: random.Random) -> list[bytes]:
    update = _update(rnd)
    doc = Doc()
    doc.apply_update(update)
    return [
        protocol.sync_step1(doc.get_state()),
        protocol.sync_step2(update),
        protocol.sync_update(update),
        protocol.sync_update(b"\x00\x00"),
        _aware(rnd, '{"user":{"name":"ann"}}'),
        b"\x03",
        protocol.extension({"op": "hello", "acks": True}),
    ]


def _aware(rnd: random.Random, *states: str | bytes) -> bytes:
    out = bytearray(v(len(states)))
    for state in states:
        raw = state.encode() if isinstance(state, str) else state
        out += v(rnd.randrange(1, 2**32)) + v(rnd.randint(0, 5)) + varbytes(raw)
    return protocol.awareness(bytes(out))


def _ext(body: bytes) -> bytes:
    return v(protocol.MESSAGE_EXTENSION) + varbytes(body)


def _big(rnd: random.Random) -> int:
    return rnd.choice([2**31, 2**32 - 1, 2**32, 2**40, 2**53 - 1, rnd.randrange(2**20, 2**53)])


def truncated_varint(rnd: random.Random) -> Case:
    cont = bytes(0x80 | rnd.randrange(128) for _ in range(rnd.randint(1, 12)))
    prefix = rnd.choice([b"", b"\x00", b"\x00\x01", b"\x00\x02", b"\x01", b"\x64"])
    return Case("truncated varint", [prefix + cont], closecodes.INVALID_MESSAGE)


def huge_length_prefix(rnd: random.Random) -> Case:
    head = rnd.choice([b"\x00\x00", b"\x00\x01", b"\x00\x02", b"\x01", b"\x64"])
    claimed = rnd.choice([2**60, 2**53 - 1, 2**40, 2**32, rnd.randrange(100, 2**31)])
    return Case("huge length prefix", [head + v(claimed) + rnd.randbytes(rnd.randint(0, 32))],
                closecodes.INVALID_MESSAGE)


def unknown_type(rnd: random.Random) -> Case:
    kind = rnd.choice([2, 4, 5, 99, 101, 127, 128, 2**20, 2**52])
    return Case("unknown message type", [v(kind) + rnd.randbytes(rnd.randint(0, 8))], closecodes.INVALID_MESSAGE)


def unknown_sync_subtype(rnd: random.Random) -> Case:
    subtype = rnd.choice([3, 4, 100, 2**31, 2**52])
    return Case("unknown sync subtype", [b"\x00" + v(subtype) + varbytes(rnd.randbytes(rnd.randint(0, 16)))],
                closecodes.INVALID_MESSAGE)


def garbage_update(rnd: random.Random) -> Case:
    payload = rnd.randbytes(rnd.randint(1, 300))
    frame = rnd.choice([protocol.sync_update, protocol.sync_step2])(payload)
    return Case("garbage update", [frame])


def huge_claim_update(rnd: random.Random) -> Case:
    """Yjs v1 update headers that claim billions of clients, structs, clocks or lengths."""
    client = v(rnd.randrange(2**20, 2**32))
    big = v(_big(rnd))
    payload = rnd.choice([
        big + b"\x00",  # billions of clients
        v(1) + big + client + v(0),  # billions of structs for one client
        v(1) + v(1) + client + big + b"\x00" + v(3) + b"\x00",  # a clock near 2**53
        v(1) + v(1) + client + v(0) + b"\x00" + big + b"\x00",  # a GC range billions long
        v(1) + v(1) + client + v(0) + b"\x0a" + big + b"\x00",  # a skip range billions long
        v(1) + v(1) + client + v(0) + b"\x04\x01" + varbytes(b"ops") + big + b"ab\x00",  # a huge string
        v(1) + v(1) + client + v(0) + b"\x08\x01" + varbytes(b"ops") + big + b"\x00",  # billions of items
        v(1) + v(1) + client + v(0) + b"\x02\x01" + varbytes(b"ops") + big + b"\x00",  # billions of JSON values
        b"\x00" + v(1) + client + big + (v(0) + v(5)) * 3,  # a delete set with billions of ranges
        b"\x00" + v(1) + client + v(1) + v(0) + big,  # one delete range billions long
    ])
    frame = rnd.choice([protocol.sync_update, protocol.sync_step2])(payload)
    return Case("update claiming billions", [frame])


def oversized_awareness(rnd: random.Random, limits: Limits) -> Case:
    """Awareness over --awareness-max-bytes but under --max-message-bytes: 4413, never relayed."""
    name = "y" * rnd.randint(limits.awareness_max_bytes, limits.max_message_bytes - 200)
    return Case("oversized awareness", [_aware(rnd, json.dumps({"name": name}))], closecodes.TOO_LARGE)


NON_JSON_STATES: list[str | bytes] = [
    "NaN", "Infinity", "-Infinity", "{", "[1,]", "undefined", "'x'", "{'a': 1}", "", " ", "nul", "tru",
    '{"a":1}x', "[" * 2000 + "]" * 2000, b"\xff\xfe", b"\xc0\xaf", '"\ud800"'.encode("utf-8", "surrogatepass"),
    "\x00",
]
JSON_STATES = ["null", "{}", '{"user":{"name":"ann","color":"#ff0"}}', "1", '"x"', "[]", "true"]


def awareness_state(rnd: random.Random) -> Case:
    states = [rnd.choice(NON_JSON_STATES if rnd.random() < 0.7 else JSON_STATES) for _ in range(rnd.randint(1, 3))]
    if rnd.random() < 0.2:  # a count that claims more entries than there are bytes
        return Case("awareness entry count", [protocol.awareness(v(_big(rnd)) + b"\x01\x01\x02{}")],
                    closecodes.INVALID_MESSAGE)
    return Case("awareness state", [_aware(rnd, *states)])


def text_frame(rnd: random.Random) -> Case:
    text = rnd.choice(['{"type":"sync"}', "", "\x00", "hello", "\u202e", "a" * rnd.randint(1, 200)])
    return Case("text frame", [text], closecodes.INVALID_MESSAGE)


def zero_length_frame(rnd: random.Random) -> Case:
    return Case("zero-length frame", [b""], closecodes.INVALID_MESSAGE)


def bad_extension(rnd: random.Random) -> Case:
    body = rnd.choice([
        rnd.randbytes(rnd.randint(0, 40)),
        b"\xc1",  # never used in msgpack
        b"\x91" * rnd.randint(100, 3000) + b"\x01",  # nested too deep
        b"\xdd" + rnd.randbytes(4),  # an array claiming up to 2**32 items
        b"\xdf" + rnd.randbytes(4),  # a map claiming up to 2**32 entries
        b"\xdb\xff\xff\xff\xff",  # a string claiming 4 GiB
        b"\xc6\xff\xff\xff\xff",  # a bin claiming 4 GiB
        msgpack.packb({1: 1}),
        msgpack.packb({"op": rnd.choice(["ack", "welcome", "", "HELLO", "hello\x00"]), "n": 1}),
        msgpack.packb({"op": "hello", "acks": True}) + b"\x00",
        msgpack.packb({"op": "hello", "pad": "x" * (protocol.MAX_EXTENSION_BYTES + 1)}),
        msgpack.packb({"op": 5}),
        msgpack.packb([1, 2, 3]),
        b"\x81\xa2op\xa2\xff\xfe",
        b"\xd4\x01\x00",  # an ext type
    ])
    return Case("extension with bad msgpack", [_ext(body)])


def mutated(rnd: random.Random) -> Case:
    frame = bytearray(rnd.choice(_seeds(rnd)))
    for _ in range(rnd.randint(1, 4)):
        mutation = rnd.choice(["flip", "truncate", "huge varint", "set byte", "append", "duplicate", "delete"])
        at = rnd.randrange(max(len(frame), 1))
        if mutation == "flip" and frame:
            frame[at] ^= 1 << rnd.randrange(8)
        elif mutation == "truncate":
            del frame[at:]
        elif mutation == "huge varint":
            frame[at:at] = v(_big(rnd))
        elif mutation == "set byte" and frame:
            frame[at] = rnd.randrange(256)
        elif mutation == "append":
            frame += rnd.randbytes(rnd.randint(1, 8))
        elif mutation == "duplicate":
            frame[at:at] = frame[at : at + rnd.randint(1, 16)]
        elif mutation == "delete" and frame:
            del frame[at : at + rnd.randint(1, 4)]
    return Case("mutated valid frame", [bytes(frame)])


def random_bytes(rnd: random.Random) -> Case:
    return Case("random bytes", [rnd.randbytes(rnd.randint(1, 128))])


def oversized_frame(rnd: random.Random, limits: Limits) -> Case:
    if rnd.random() < 0.5:
        size = rnd.randint(limits.max_message_bytes + 1, limits.max_message_bytes + WS_LAYER_SLACK)
        return Case("frame over the size limit", [protocol.sync_update(b"\x00" * (size - 4))[:size]],
                    closecodes.TOO_LARGE)
    size = limits.max_message_bytes + WS_LAYER_SLACK + rnd.randint(1, 4096)
    return Case("frame beyond the WebSocket layer's limit", [b"\x00\x02" + b"\x00" * (size - 2)], MESSAGE_TOO_BIG)


def out_of_order_writer(rnd: random.Random) -> Case:
    """One writer's cart transactions (``lines`` and ``ops`` together) sent shuffled, some twice, some
    merged into one chunk, some never: held until what they depend on arrives, never half-integrated."""
    doc = Doc(client_id=rnd.randrange(1, 2**32))
    lines, ops = doc.get("lines", type=Map), doc.get("ops", type=Array)
    updates: list[bytes] = []
    subscription = doc.observe(lambda event: updates.append(event.update))
    for index in range(rnd.randint(2, 6)):
        with doc.transaction():
            lines[f"p{index}"] = {"q": index}
            ops.append({"p": index})
    doc.unobserve(subscription)
    chunks = []
    for _ in range(rnd.randint(1, len(updates) + 2)):
        picked = rnd.sample(updates, rnd.randint(1, min(3, len(updates))))
        chunks.append(picked[0] if len(picked) == 1 else merge(picked))
    return Case("out-of-order writer", [rnd.choice([protocol.sync_update, protocol.sync_step2])(c) for c in chunks])


def trailing_bytes(rnd: random.Random) -> Case:
    """A valid update with bytes after it: refused whole (4422), never stored with its tail."""
    tail = rnd.choice([b"\x00", rnd.randbytes(rnd.randint(1, 64)), b"\x00" * rnd.randint(100, 4000)])
    return Case("update with trailing bytes", [protocol.sync_update(_update(rnd) + tail)], closecodes.INVALID_UPDATE)


# Yjs's own limits tests (commit d88422fc), the seven-byte memory bomb, and absurd GC and skip lengths.
YJS_LIMITS_INPUTS = [
    bytes([0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 2, 0, 0, 22, 2, 0, 0, 1, 253, 255, 255, 255, 255, 127, 0, 0]),
    bytes([228, 156, 16, 0, 5, 255, 255, 5, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 237, 0, 0, 0, 1, 1, 0, 254, 184, 194,
           233, 173, 135, 217, 18, 0, 0, 1, 1, 255, 237, 246]),
    bytes([228, 149, 0, 0, 1, 24, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 237, 1, 190, 130, 227, 195, 28, 1, 2, 228, 149, 0,
           0, 1, 24, 0, 0, 1, 24, 0, 0, 1, 0, 1, 237, 0]),
    bytes([143, 1, 128, 0, 0, 0, 1, 170, 1, 0, 1, 2, 0, 0, 22, 2, 0, 229, 196, 67, 20, 231, 166, 139, 147, 174, 181,
           253, 93, 232, 38, 154, 138, 89, 0, 49, 213, 15, 18, 1, 48, 0, 0, 0]),
    bytes([0, 1, 35, 0, 0, 0, 1, 2, 129, 0, 0, 16, 0, 199, 220, 0, 196, 122, 128, 0, 65, 171, 234, 214, 0, 1, 0, 0,
           1, 0, 0, 132, 0, 0, 16, 255, 199, 220, 255, 0, 0, 0]),
    bytes.fromhex("ffffff7a"),
]


def limits_input(rnd: random.Random) -> Case:
    client = v(rnd.randrange(1, 2**32))
    payload = rnd.choice([
        *YJS_LIMITS_INPUTS,
        v(1) + v(1) + client + v(0) + b"\x00" + v(rnd.randint(100_001, 2**40)) + v(0),  # a GC past 100,000
        v(1) + v(2) + client + v(0) + b"\x0a" + v(rnd.randint(100_001, 2**40)) + b"\x00" + v(1) + v(0),  # a skip
    ])
    frame = rnd.choice([protocol.sync_update, protocol.sync_step2])(payload)
    return Case("limits input", [frame], closecodes.INVALID_UPDATE)


GENERATORS = [
    (truncated_varint, 6), (huge_length_prefix, 6), (unknown_type, 4), (unknown_sync_subtype, 4),
    (garbage_update, 8), (huge_claim_update, 10), (awareness_state, 8), (text_frame, 3), (zero_length_frame, 1),
    (bad_extension, 8), (mutated, 30), (random_bytes, 6), (out_of_order_writer, 8), (trailing_bytes, 4),
    (limits_input, 4),
]


CATEGORIES = [generator.__name__ for generator, _ in GENERATORS] + ["oversized_frame", "oversized_awareness"]


def make_case(rnd: random.Random, limits: Limits, category: str | None = None) -> Case:
    """One hostile case of ``category`` (drawn by weight if None); sometimes after valid frames."""
    if category is None:
        roll = rnd.random()
        if roll < 0.02:
            category = "oversized_frame"
        elif roll < 0.06:
            category = "oversized_awareness"
        else:
            generators, weights = zip(*GENERATORS, strict=True)
            category = rnd.choices(generators, weights)[0].__name__
    if category == "oversized_frame":
        case = oversized_frame(rnd, limits)
    elif category == "oversized_awareness":
        case = oversized_awareness(rnd, limits)
    else:
        case = {generator.__name__: generator for generator, _ in GENERATORS}[category](rnd)
    if rnd.random() < 0.25:
        prefix = rnd.choice([protocol.extension({"op": "hello", "acks": True}), protocol.sync_update(_update(rnd)),
                             protocol.sync_step1(b"\x00"), b"\x03"])
        case.frames.insert(0, prefix)
    return case


# -- running a case against the relay ------------------------------------------------------------


def run_case(url: str, case: Case, timeout: float = 10.0) -> int | str:
    """Send the case's frames then a sync step 1: "handled" if its step 2 comes back, else the close code."""
    with connect(url, max_size=None, open_timeout=timeout, close_timeout=timeout) as ws:
        try:
            for frame in case.frames:
                ws.send(frame)
            ws.send(protocol.sync_step1(b"\x00"))
            deadline = time.monotonic() + timeout
            steps = 0
            wanted = 1 + sum(1 for f in case.frames if isinstance(f, bytes) and f[:2] == b"\x00\x00")
            while time.monotonic() < deadline:
                reply = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
                if isinstance(reply, bytes) and protocol.decode(reply).kind is Kind.STEP2:
                    steps += 1
                    if steps >= wanted:
                        return "handled"
        except ConnectionClosed:
            code = ws.close_code
            return code if code is not None else 1006
        except (TimeoutError, InvalidHandshake) as exc:
            raise AssertionError(f"the relay neither answered nor closed: {exc!r}") from exc
    raise AssertionError("the relay neither answered nor closed in time")


class Audit:
    """Checks one case's effect on the relay: its outcome, the store, memory."""

    def __init__(self, relay: RelayProcess, limits: Limits, room: str, bystander_room: str,
                 rss_growth_bound: int) -> None:
        self.relay = relay
        self.limits = limits
        self.room = room
        self.bystander_room = bystander_room
        self.rss_growth_bound = rss_growth_bound
        self.url = relay.url_for(room)
        self.outcomes: Counter[str] = Counter()
        self.baseline_rss = rss_bytes(relay)
        self.peak_rss = self.baseline_rss
        self.bystanders = 0
        self.model = Doc()
        """What the fuzzed room holds: every update the relay stored in it."""

    def run(self, case: Case) -> None:
        expected = expected_outcome(case.frames, self.limits, self.model)
        if case.expected is not None:
            assert expected.outcome == case.expected, f"oracle drift on {case.describe()}"
        delta = StoreDelta(self.relay, (self.bystander_room,))
        outcome = run_case(self.url, case)
        if expected.outcome == MESSAGE_TOO_BIG and outcome == ABNORMAL:
            # uvicorn fails the connection as soon as the frame header shows the size, while the client is
            # still sending: the kernel answers the unread bytes with a RST, which can overtake the close frame.
            outcome = MESSAGE_TOO_BIG
        self.outcomes[f"{case.category} -> {outcome}"] += 1
        assert outcome == expected.outcome, f"expected {expected.outcome}, got {outcome}: {case.describe()}"
        wanted = Counter([("updates", self.room, u) for u in expected.stored]
                         + [("changes", self.room, None)] * len(expected.stored))
        if outcome == MESSAGE_TOO_BIG:
            # uvicorn drops the frames that arrived in the same read as the oversized one: earlier writes,
            # never acknowledged, may or may not be stored. Wait for the offender's handler to finish.
            anyio.run(wait_for, lambda: gauge(self.relay, "syncline_connections"), float(self.bystanders))
            gained = delta.gained()
            assert gained - wanted == Counter(), f"the store gained {gained - wanted}: {case.describe()}"
        else:
            gained = delta.gained()
            assert gained == wanted, f"the store gained {gained}, expected {wanted}: {case.describe()}"
        assert delta.intact(), f"rows older than the case changed: {case.describe()}"
        for table, _, blob in gained.elements():
            if table == "updates":
                self.model.apply_update(blob)
        self.peak_rss = max(self.peak_rss, rss_bytes(self.relay))
        assert self.peak_rss - self.baseline_rss < self.rss_growth_bound, (
            f"relay RSS grew by {(self.peak_rss - self.baseline_rss) / MIB:.1f} MiB")
