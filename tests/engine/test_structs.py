"""The strict reader of v1 updates: exact decoding, bounded cost, and what an update needs."""

from __future__ import annotations

import itertools
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from pycrdt import (
    Array,
    Doc,
    Map,
    Text,
    TransactionEvent,
    XmlElement,
    XmlFragment,
    XmlText,
    get_state,
    merge_updates,
)
from syncline.engine import DEFAULT_LIMITS, InvalidUpdate, StructLimits, read_update, validate_update
from syncline.engine.sync import decode_state_vector

# -- a hand encoder for crafted updates ---------------------------------------------------


def uint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return uint(len(raw)) + raw


def update(*clients: tuple[int, int, list[bytes]], deletes: bytes = b"\x00") -> bytes:
    """A v1 update: ``(client, clock, [struct bytes...])`` per client, then the delete set."""
    body = uint(len(clients))
    for client, clock, structs in clients:
        body += uint(len(structs)) + uint(client) + uint(clock) + b"".join(structs)
    return body + deletes


def root_item(content: bytes, ref: int, root: str = "r") -> bytes:
    """An item with no origin, its parent the root type ``root``."""
    return bytes([ref]) + b"\x01" + string(root) + content


def any_item(*values: bytes) -> bytes:
    return root_item(uint(len(values)) + b"".join(values), 8)


def GC(length: int) -> bytes:
    return b"\x00" + uint(length)


def SKIP(length: int) -> bytes:
    return b"\x0a" + uint(length)


def reason(data: bytes, limits: StructLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(InvalidUpdate) as info:
        read_update(data, limits=limits)
    return info.value.reason


def peak_bytes(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        call()
    except InvalidUpdate:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


# -- updates pycrdt writes -------------------------------------------------------------------


def rich_doc() -> Doc:
    """Every kind of content Yrs writes: strings with astral characters, formats, embeds,
    binary, sub-documents, nested types, XML, deletions (GC'd)."""
    doc = Doc(client_id=11)
    text = doc.get("t", type=Text)
    text.insert(0, "héllo 😀 wörld ✓")
    text.format(0, 3, {"bold": True})
    text.insert_embed(2, {"img": "x"})
    root = doc.get("m", type=Map)
    root["bytes"] = b"\x00\x01"
    root["sub"] = Doc()
    root["nested"] = Map({"a": [1, 2, {"x": None, "y": [True, False, "s"]}], "t": Text("in")})
    root["big"] = 2**40
    root["negative"] = -(2**40)
    root["float"] = 1.5
    xml = doc.get("x", type=XmlFragment)
    xml.children.append(XmlElement("p", {"k": "v"}, [XmlText("hi")]))
    del text[0:2]
    del root["float"]
    return doc


def rich_updates() -> dict[str, bytes]:
    doc = rich_doc()
    split = Doc(client_id=14)  # Yrs splits the text into an empty String item, deleted: Deleted(0)
    text = split.get("t", type=Text)
    text.insert(0, "héllo 😀 world")
    text.format(0, 3, {"bold": True})
    text.insert_embed(2, {"img": "x"})
    del text[0:len(str(text).encode()) + 1]
    no_gc = Doc(client_id=13, skip_gc=True)
    no_gc.get("t", type=Text).insert(0, "deleted but not collected")
    del no_gc.get("t", type=Text)[2:9]
    return {
        "full": doc.get_update(),
        "diff": doc.get_update(b"\x01\x0b\x05"),
        "no-gc": no_gc.get_update(),
        "empty-items": split.get_update(),
        "empty": Doc().get_update(),
    }


RICH = rich_updates()


@pytest.mark.parametrize("name", sorted(RICH))
def test_updates_pycrdt_writes_read_whole_with_pycrdts_state_vector(name: str) -> None:
    shape = read_update(RICH[name])
    assert shape.state_vector() == decode_state_vector(get_state(RICH[name]))
    assert shape.byte_size == len(RICH[name])


def test_the_shape_lists_runs_references_and_deletes() -> None:
    shape = read_update(RICH["no-gc"])
    assert shape.runs == {13: ((0, 25, False),)}
    assert shape.deletes == {13: 9}
    assert shape.references == {13: 9}  # the split text's right half points at its left half
    assert shape.struct_count == 3
    assert shape.missing({}) == {}


def test_validate_update_returns_the_shape() -> None:
    assert validate_update(RICH["full"]) == read_update(RICH["full"])


# -- the pycrdt out-of-order loss ------------------------------------------------------------


def two_root_transactions() -> list[bytes]:
    """Three transactions of one writer, each writing the Map ``lines`` and the Array ``ops``."""
    doc = Doc(client_id=7)
    lines, ops = doc.get("lines", type=Map), doc.get("ops", type=Array)
    updates = []
    for index in range(3):
        before = doc.get_state()
        with doc.transaction():
            lines[f"k{index}"] = index
            ops.append({"op": index})
        updates.append(doc.get_update(before))
    return updates


def test_pycrdt_drops_content_of_a_writer_update_applied_out_of_clock_order() -> None:
    updates = two_root_transactions()
    doc = Doc(client_id=9)
    for index in (0, 2, 1):
        doc.apply_update(updates[index])
    # pycrdt 0.14.13: one op is lost for good and the state vector stays short
    assert len(doc.get("ops", type=Array)) == 2
    assert decode_state_vector(doc.get_state()) == {7: 5}


def test_missing_flags_the_update_that_pycrdt_would_half_apply() -> None:
    updates = two_root_transactions()
    after_first = decode_state_vector(get_state(updates[0]))
    assert read_update(updates[2]).missing(after_first) == {7: 4}
    assert read_update(updates[1]).missing(after_first) == {}
    after_second = {7: 4}
    assert read_update(updates[2]).missing(after_second) == {}
    assert read_update(updates[2]).writes_beyond(after_second) == [7]
    assert read_update(updates[2]).writes_beyond({7: 6}) == []


# -- missing() and writes_beyond() on crafted shapes ------------------------------------------


def test_a_skip_does_not_advance_the_reached_clock() -> None:
    data = update((5, 0, [any_item(b"\x78"), SKIP(3), any_item(b"\x78")]))
    shape = read_update(data)
    assert shape.runs == {5: ((0, 1, False), (1, 4, True), (4, 5, False))}
    assert shape.state_vector() == decode_state_vector(get_state(data)) == {5: 1}
    assert shape.missing({}) == {5: 4}
    assert shape.missing({5: 4}) == {}
    assert shape.writes_beyond({5: 4}) == [5]
    assert shape.writes_beyond({5: 5}) == []


def test_references_and_deletes_must_be_reached() -> None:
    origin_item = b"\x88" + uint(3) + uint(9) + b"\x01\x78"  # Any item with origin (3, 9)
    deletes = b"\x01" + uint(4) + b"\x01" + uint(2) + uint(5)  # client 4 deletes clocks 2..6
    shape = read_update(update((5, 0, [origin_item]), deletes=deletes))
    assert shape.references == {3: 10}
    assert shape.deletes == {4: 7}
    assert shape.missing({}) == {3: 10, 4: 7}
    assert shape.missing({3: 10, 4: 6}) == {4: 7}
    assert shape.missing({3: 10, 4: 7}) == {}


def test_a_reference_into_the_update_itself_is_reached() -> None:
    first = root_item(b"\x01\x78", 8)
    second = b"\x88" + uint(5) + uint(0) + b"\x01\x78"
    assert read_update(update((5, 0, [first, second]))).missing({}) == {}


def test_a_parent_id_is_a_reference() -> None:
    item = bytes([0x08]) + b"\x00" + uint(2) + uint(40) + b"\x01\x78"
    assert read_update(update((5, 0, [item]))).references == {2: 41}


# -- strictness -------------------------------------------------------------------------------


VALID = RICH["full"]


@pytest.mark.parametrize("tail", [b"\x00", b"\x00\x00", b"\xff", b"\x00" * 900_000])
def test_trailing_bytes_are_refused(tail: bytes) -> None:
    assert "trailing bytes" in reason(VALID + tail)
    with pytest.raises(InvalidUpdate):
        validate_update(VALID + tail)


@pytest.mark.parametrize("name", ["full", "diff", "no-gc"])
def test_every_truncation_of_a_valid_update_is_refused(name: str) -> None:
    data = RICH[name]
    for length in range(len(data)):
        with pytest.raises(InvalidUpdate):
            read_update(data[:length])


def test_counts_over_the_limits_are_refused() -> None:
    limits = StructLimits(max_clients=1, max_structs=2, max_delete_ranges=1)
    item = any_item(b"\x78")
    assert "2 clients exceeds the limit of 1" in reason(update((1, 0, [item]), (2, 0, [item])), limits)
    assert "3 structs exceeds the limit of 2" in reason(update((1, 0, [item] * 3)), limits)
    two_ranges = b"\x01\x01\x02\x00\x01\x05\x01"
    assert "2 delete ranges exceeds the limit of 1" in reason(update(deletes=two_ranges), limits)
    assert "clients exceeds the limit of 100000" in reason(uint(100_001) + b"\x00" * 300_004)
    assert "structs exceeds the limit of 100000" in reason(b"\x01" + uint(100_001) + b"\x00" * 200_004)


@pytest.mark.parametrize("count", [50, 1000, 2**40])
def test_counts_larger_than_the_bytes_left_are_refused_before_reading_on(count: int) -> None:
    assert "claimed with" in reason(b"\x01\x01\x01\x00" + any_item()[:-1] + uint(count) + b"\x78")
    assert "claimed with" in reason(b"\x01" + uint(min(count, 99_999)) + b"\x01\x00\x00\x01")


LIMITS_TEST_INPUTS = {
    # Yjs commit d88422fc, tests/limits.tests.js (the first four are v2 updates: never valid v1)
    "4398046511101-structs": bytes([
        0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 2, 0, 0, 22, 2, 0, 0, 1, 253, 255, 255,
        255, 255, 127, 0, 0,
    ]),
    "265828-updates-v1": bytes([
        228, 156, 16, 0, 5, 255, 255, 5, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 237,
        0, 0, 0, 1, 1, 0, 254, 184, 194, 233, 173, 135, 217, 18, 0, 0, 1, 1,
        255, 237, 246,
    ]),
    "7658324286-updates-v2": bytes([
        228, 149, 0, 0, 1, 24, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 237, 1, 190,
        130, 227, 195, 28, 1, 2, 228, 149, 0, 0, 1, 24, 0, 0, 1, 24, 0, 0,
        1, 0, 1, 237, 0,
    ]),
    "gc-of-length-553253": bytes([
        143, 1, 128, 0, 0, 0, 1, 170, 1, 0, 1, 2, 0, 0, 22, 2, 0, 229, 196,
        67, 20, 231, 166, 139, 147, 174, 181, 253, 93, 232, 38, 154, 138,
        89, 0, 49, 213, 15, 18, 1, 48, 0, 0, 0,
    ]),
    "267854847-structs": bytes([
        0, 1, 35, 0, 0, 0, 1, 2, 129, 0, 0, 16, 0, 199, 220, 0, 196, 122, 128,
        0, 65, 171, 234, 214, 0, 1, 0, 0, 1, 0, 0, 132, 0, 0, 16, 255, 199, 220,
        255, 0, 0, 0,
    ]),
    # the update payload of a 7-byte sync-update frame on which Yrs allocates 512 MB
    "ff-ff-ff-7a": b"\xff\xff\xff\x7a",
}


@pytest.mark.parametrize("name", sorted(LIMITS_TEST_INPUTS))
def test_hostile_inputs_are_refused_quickly_in_under_a_megabyte(name: str) -> None:
    data = LIMITS_TEST_INPUTS[name]
    started = time.perf_counter()
    with pytest.raises(InvalidUpdate):
        read_update(data)
    assert time.perf_counter() - started < 0.5
    assert peak_bytes(lambda: read_update(data)) < 1_000_000


def test_claiming_the_largest_counts_costs_no_memory() -> None:
    for data in (uint(2**53 - 1), b"\x01" + uint(2**53 - 1), b"\x01\x01\x01\x00" + any_item()[:-1] + uint(2**52)):
        assert peak_bytes(lambda data=data: read_update(data)) < 1_000_000


@pytest.mark.parametrize(
    ("struct", "what"),
    [(GC(100_001), "GC"), (SKIP(100_001), "Skip"), (root_item(uint(100_001), 1), "Deleted"),
     (GC(553_253), "GC")],
)
def test_gc_skip_and_deleted_lengths_outside_the_limit_are_refused(struct: bytes, what: str) -> None:
    assert f"{what} length" in reason(update((1, 0, [struct])))


def test_zero_length_structs_and_delete_ranges_are_read() -> None:
    data = update((1, 0, [GC(0), SKIP(0), root_item(b"\x00", 1), root_item(b"\x00", 4)]),
                  deletes=b"\x01\x01\x01\x00\x00")
    shape = read_update(data)
    assert (shape.runs, shape.deletes, shape.struct_count) == ({1: ((0, 0, False), (0, 0, True), (0, 0, False))},
                                                               {}, 4)


def test_the_length_limit_is_configurable() -> None:
    data = update((1, 0, [GC(150_000)]))
    assert read_update(data, limits=StructLimits(max_length=150_000)).runs == {1: ((0, 150_000, False),)}


def test_a_deleted_paste_longer_than_the_default_limit_is_refused_unless_the_limit_is_raised() -> None:
    doc = Doc(client_id=1)
    text = doc.get("t", type=Text)
    text += "x" * 150_000
    del text[0:150_000]
    data = doc.get_update()
    assert "Deleted length 150000" in reason(data)
    shape = read_update(data, limits=StructLimits(max_length=1_000_000))
    assert shape.state_vector() == decode_state_vector(get_state(data))


@pytest.mark.parametrize(
    "bad",
    [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"],
    ids=["invalid-byte", "bad-continuation", "surrogate", "past-unicode", "cut-short"],
)
def test_invalid_utf8_is_refused_wherever_a_string_is(bad: bytes) -> None:
    places = [
        update((1, 0, [root_item(string(bad), 4)])),  # String content
        update((1, 0, [bytes([8]) + b"\x01" + string(bad) + b"\x01\x78"])),  # root name
        update((1, 0, [bytes([0x28]) + b"\x01\x01r" + string(bad) + b"\x01\x78"])),  # parent sub
        update((1, 0, [any_item(b"\x77" + string(bad))])),  # any string
        update((1, 0, [any_item(b"\x76\x01" + string(bad) + b"\x78")])),  # any object key
        update((1, 0, [root_item(string(bad) + string("v"), 6)])),  # format key
        update((1, 0, [root_item(b"\x03" + string(bad), 7)])),  # XML element name
    ]
    for data in places:
        assert "invalid UTF-8" in reason(data)


def test_unknown_tags_and_flags_are_refused() -> None:
    for ref in range(11, 32):
        assert f"unknown struct ref {ref}" in reason(update((1, 0, [root_item(b"\x01\x78", ref)])))
    assert "unknown type ref 7" in reason(update((1, 0, [root_item(b"\x07", 7)])))
    for tag in (0, 115, 128, 255):
        assert f"unknown value tag {tag}" in reason(update((1, 0, [any_item(bytes([tag]))])))
    assert "parent flag 2" in reason(update((1, 0, [bytes([8]) + b"\x02\x01r\x01\x78"])))
    assert "flags 0x80 on a GC" in reason(update((1, 0, [b"\x80\x01"])))
    assert "flags 0x20 on a Skip" in reason(update((1, 0, [b"\x2a\x01"])))


def test_a_client_listed_twice_is_refused() -> None:
    item = any_item(b"\x78")
    assert "client 1 listed twice" in reason(update((1, 0, [item]), (1, 1, [item])))


def test_integers_over_53_bits_are_refused() -> None:
    assert "over 53 bits" in reason(b"\x01\x01" + uint(2**53) + b"\x00" + any_item(b"\x78") + b"\x00")
    assert "longer than 8 bytes" in reason(b"\x80" * 9 + b"\x00")
    assert "over 53 bits" in reason(update((1, 0, [any_item(b"\x7d" + b"\xff" * 7 + b"\x7f")])))
    read_update(update((1, 0, [any_item(b"\x7d" + b"\xff" * 6 + b"\x7f")])))  # 6 + 49 bits: fine
    assert "passes 2**53" in reason(update((1, 2**53 - 2, [GC(5)])))


@pytest.mark.parametrize("depth", [64, 65])
def test_any_values_nest_at_most_64_deep(depth: int) -> None:
    value = b"\x75\x01" * depth + b"\x7e"
    data = update((1, 0, [any_item(value)]))
    if depth <= DEFAULT_LIMITS.max_depth:
        assert read_update(data).runs == {1: ((0, 1, False),)}
    else:
        assert "nested deeper than 64" in reason(data)


def test_a_deep_nesting_attack_is_cheap() -> None:
    data = update((1, 0, [any_item(b"\x75\x01" * 400_000 + b"\x7e")]))
    assert peak_bytes(lambda: read_update(data)) < 1_000_000


def test_every_content_kind_reads_with_its_clock_length() -> None:
    structs = [
        root_item(uint(3) + string("1") + string('"a"') + string("undefined"), 2),  # JSON: 3
        root_item(string(b"\x00\x01\x02"), 3),  # Binary: 1
        root_item(string("a😀"), 4),  # String: 3 UTF-16 units
        root_item(string('{"img":1}'), 5),  # Embed: 1
        root_item(string("bold") + string("true"), 6),  # Format: 1
        root_item(b"\x05" + string("hook"), 7),  # Type (XmlHook): 1
        root_item(b"\x01\x7c" + b"\x00" * 4, 8),  # Any float32: 1
        root_item(string("guid") + b"\x76\x00", 9),  # Doc: 1
        root_item(uint(4), 1),  # Deleted: 4
    ]
    assert read_update(update((1, 0, structs))).state_vector() == {1: 16}


# -- random edits: every update pycrdt writes reads, and missing() tells when it integrates ---


@dataclass
class Recorded:
    """Every update the replicas emitted, in emission order, with who emitted it."""

    updates: list[tuple[int, bool, bytes]] = field(default_factory=list)  # (replica, local, bytes)
    local: bool = True


def record(doc: Doc, index: int, log: Recorded) -> None:
    def on_transaction(event: TransactionEvent) -> None:
        if event.update != b"\x00\x00":
            log.updates.append((index, log.local, event.update))

    doc.observe(on_transaction)


TEXTS = st.text(alphabet=st.sampled_from("ab é✓😀🇫🇷\n"), min_size=1, max_size=6)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.floats(allow_nan=False), TEXTS,
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
                      max_leaves=6)
EDITS = st.one_of(
    st.tuples(st.just("text-insert"), st.floats(0, 1), TEXTS),
    st.tuples(st.just("text-delete"), st.floats(0, 1), st.integers(1, 4)),
    st.tuples(st.just("text-format"), st.floats(0, 1), st.integers(1, 3)),
    st.tuples(st.just("text-embed"), st.floats(0, 1), st.none()),
    st.tuples(st.just("array-insert"), st.floats(0, 1), VALUES),
    st.tuples(st.just("array-nested"), st.floats(0, 1), st.sampled_from(["map", "array", "text"])),
    st.tuples(st.just("array-delete"), st.floats(0, 1), st.integers(1, 3)),
    st.tuples(st.just("map-set"), st.sampled_from("abcd"), VALUES),
    st.tuples(st.just("map-nested"), st.sampled_from("abcd"), TEXTS),
    st.tuples(st.just("map-delete"), st.sampled_from("abcd"), st.none()),
    st.tuples(st.just("nested-edit"), st.floats(0, 1), TEXTS),
)
STEPS = st.lists(st.tuples(st.integers(0, 2), st.one_of(EDITS, st.tuples(st.just("sync"), st.integers(0, 2)))),
                 min_size=1, max_size=25)


def utf8_offset(text: Text, fraction: float, extra: int = 0) -> tuple[int, int]:
    """pycrdt 0.14 indexes Text by UTF-8 byte (an embed counts 1): the offsets of the character
    at ``fraction`` of the text and of the one ``extra`` characters after it."""
    widths = []
    for insert, _ in text.diff():
        widths.extend([len(char.encode()) for char in insert] if isinstance(insert, str) else [1])
    start = int(fraction * len(widths))
    return sum(widths[:start]), sum(widths[:start + extra])


def edit(doc: Doc, kind: str, where: object, what: object) -> None:
    text, array, root = doc.get("text", type=Text), doc.get("array", type=Array), doc.get("map", type=Map)
    if kind == "text-insert":
        text.insert(utf8_offset(text, where)[0], what)
    elif kind == "text-delete" and text.diff():
        start, end = utf8_offset(text, where, what)
        del text[start:end]
    elif kind == "text-format" and text.diff():
        text.format(*utf8_offset(text, where, what), {"bold": True})
    elif kind == "text-embed":
        text.insert_embed(utf8_offset(text, where)[0], {"img": 1})
    elif kind == "array-insert":
        array.insert(int(where * len(array)), what)
    elif kind == "array-nested":
        nested = {"map": lambda: Map({"k": 1}), "array": lambda: Array([1, "x"]), "text": lambda: Text("tx")}
        array.insert(int(where * len(array)), nested[what]())
    elif kind == "array-delete" and len(array):
        start = int(where * (len(array) - 1))
        del array[start:min(len(array), start + what)]
    elif kind == "map-set":
        root[where] = what
    elif kind == "map-nested":
        root[where] = Map({"inner": Text(what), "list": Array([what])})
    elif kind == "map-delete" and where in root:
        del root[where]
    elif kind == "nested-edit":
        for value in [*array, *root.values()]:
            if isinstance(value, Text):
                value.insert(utf8_offset(value, where)[0], what)
                return
            if isinstance(value, Map):
                value[what] = len(value)
                return
            if isinstance(value, Array):
                value.append(what)
                return


def assert_reads_like_pycrdt(data: bytes) -> None:
    assert read_update(data).state_vector() == decode_state_vector(get_state(data))


@given(steps=STEPS, gc=st.lists(st.booleans(), min_size=3, max_size=3))
def test_every_update_pycrdt_writes_reads_and_integrates_when_missing_says_so(
    steps: list[tuple[int, tuple[str, object, object]] | tuple[int, tuple[str, int]]], gc: list[bool],
) -> None:
    log = Recorded()
    docs = [Doc(client_id=client, skip_gc=not keep) for client, keep in zip((3, 2**32 - 1, 1_000_003), gc)]
    for index, doc in enumerate(docs):
        record(doc, index, log)
    for index, step in steps:
        if step[0] == "sync":
            source, target = docs[step[1]], docs[index]
            if source is not target:
                log.local = False
                target.apply_update(source.get_update(target.get_state()))
                log.local = True
        else:
            with docs[index].transaction():
                edit(docs[index], *step)

    every = [data for _, _, data in log.updates]
    for data in every:
        assert_reads_like_pycrdt(data)
    for doc in docs:
        assert_reads_like_pycrdt(doc.get_update())
        for other in docs:
            assert_reads_like_pycrdt(doc.get_update(other.get_state()))
    if every:
        assert_reads_like_pycrdt(merge_updates(*every))
        gapped = merge_updates(*every[::2])  # gaps: Skip structs
        assert_reads_like_pycrdt(gapped)
        if any(skip for runs in read_update(gapped).runs.values() for _, _, skip in runs):
            event("a merged update with skips")

    # In emission order, every update is integrable, and integrates fully.
    replica = Doc(client_id=99)
    for data in every:
        shape = read_update(data)
        state = decode_state_vector(replica.get_state())
        assert shape.missing(state) == {}
        replica.apply_update(data)
        reached = decode_state_vector(replica.get_state())
        assert all(reached.get(client, 0) >= runs[-1][1] for client, runs in shape.runs.items())

    # A writer's later update against a state that lacks its earlier one names the writer.
    for writer, doc in enumerate(docs):
        own = [position for position, (index, local, data) in enumerate(log.updates)
               if index == writer and local and doc.client_id in read_update(data).runs]
        for earlier, later in itertools.pairwise(own):
            before = Doc(client_id=98)
            for _, _, data in log.updates[:earlier]:
                before.apply_update(data)
            state = decode_state_vector(before.get_state())
            assert doc.client_id in read_update(log.updates[later][2]).missing(state)
            event("a writer's update checked against a state lacking its earlier one")


# -- fuzz: a shape or InvalidUpdate, nothing else ---------------------------------------------


SAMPLES = [*RICH.values(), *two_root_transactions(), *LIMITS_TEST_INPUTS.values()]


@given(
    sample=st.sampled_from(SAMPLES),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 10_000) | st.none(),
    extra=st.binary(max_size=4),
)
def test_mangled_updates_give_a_shape_or_invalid_update(
    sample: bytes, flips: list[tuple[int, int]], cut: int | None, extra: bytes
) -> None:
    data = bytearray(sample)
    for where, value in flips:
        if data:
            data[where % len(data)] = value
    if cut is not None and data:
        del data[cut % len(data):]
    data += extra
    try:
        shape = read_update(bytes(data))
    except InvalidUpdate:
        return
    assert shape.byte_size == len(data)


def test_every_single_byte_value_at_every_position_gives_a_shape_or_invalid_update() -> None:
    sample = RICH["diff"]
    for where in range(len(sample)):
        for value in range(256):
            data = bytearray(sample)
            data[where] = value
            try:
                read_update(bytes(data))
            except InvalidUpdate:
                pass
