"""Document names: the ``{tenant}/{kind}/{id}`` rules and the raw-path guard."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncline.engine.errors import EngineError, InvalidDocumentName
from syncline.engine.names import KINDS, PART_PATTERN, DocName, check_raw_path

PREFIX = b"/sync/"

VALID_PARTS = [
    "a",
    "A",
    "0",
    "acme",
    "acme-corp",
    "c-1",
    "a.b",
    "a_b",
    "a~b",
    "a..b",
    "9" * 128,
    "x" + "-" * 127,
]

BAD_PARTS = [
    "",  # empty
    ".",  # dot segment
    "..",  # dot segment
    ".hidden",  # must start with a letter or digit
    "-a",
    "_a",
    "~a",
    "a/b",  # slash would change the number of parts
    "%2e%2e",  # percent-encoded dot segment
    "%2F",  # percent-encoded slash
    "acme%252Fcart",  # double-encoded slash
    "acme%00",
    "ａｃｍｅ",  # fullwidth look-alike of "acme"
    "аcme",  # Cyrillic "а"
    "acme\u200b",  # zero-width space
    "café",
    "acme\x00",  # NUL
    "\x00",
    "acme\n",  # a trailing newline slips past a "$" anchor
    "acme ",
    " acme",
    "ac me",
    "acme\t",
    "a\\b",
    "a:b",
    "a?b",
    "a#b",
    "a*",
    "*",
    "a" * 129,  # one over the limit
    "1" * 1000,
]


def test_str_gives_tenant_kind_and_id_joined_by_slashes() -> None:
    name = DocName.parse("acme", "cart", "c-1")
    assert str(name) == "acme/cart/c-1"
    assert name.parts == ("acme", "cart", "c-1")
    assert (name.tenant, name.kind, name.doc_id) == ("acme", "cart", "c-1")


def test_from_string_round_trips_and_equals_parse() -> None:
    name = DocName.from_string("acme/stock/warehouse-1")
    assert name == DocName.parse("acme", "stock", "warehouse-1")
    assert DocName.from_string(str(name)) == name
    assert hash(name) == hash(DocName("acme", "stock", "warehouse-1"))


def test_doc_name_is_frozen() -> None:
    name = DocName.parse("acme", "cart", "c-1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        name.tenant = "other"  # type: ignore[misc]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_accepted(kind: str) -> None:
    assert DocName.parse("acme", kind, "x").kind == kind


@pytest.mark.parametrize("part", VALID_PARTS)
def test_valid_tenants_and_ids_are_accepted(part: str) -> None:
    assert DocName.parse(part, "cart", part).parts == (part, "cart", part)


@pytest.mark.parametrize("part", BAD_PARTS)
def test_bad_tenant_is_refused(part: str) -> None:
    with pytest.raises(InvalidDocumentName) as info:
        DocName.parse(part, "cart", "c-1")
    assert info.value.name == part
    assert "tenant" in info.value.reason


@pytest.mark.parametrize("part", BAD_PARTS)
def test_bad_doc_id_is_refused(part: str) -> None:
    with pytest.raises(InvalidDocumentName) as info:
        DocName.parse("acme", "cart", part)
    assert info.value.name == part
    assert "doc_id" in info.value.reason


@pytest.mark.parametrize(
    "kind", ["", "carts", "Cart", "CART", "stocks", "cart ", "ｃａｒｔ", "cart\x00", "*", "..", "%63art"]
)
def test_unknown_kind_is_refused(kind: str) -> None:
    with pytest.raises(InvalidDocumentName) as info:
        DocName.parse("acme", kind, "c-1")
    assert info.value.name == kind
    assert "kind" in info.value.reason


def test_constructor_applies_the_same_rules_as_parse() -> None:
    with pytest.raises(InvalidDocumentName):
        DocName("..", "cart", "c-1")
    with pytest.raises(InvalidDocumentName):
        DocName("acme", "cart", "")


@pytest.mark.parametrize("value", [None, 1, b"acme", ["acme"], 1.5])
def test_non_string_parts_are_refused_with_the_typed_error(value: object) -> None:
    with pytest.raises(InvalidDocumentName, match="must be a string"):
        DocName.parse(value, "cart", "c-1")  # type: ignore[arg-type]
    with pytest.raises(InvalidDocumentName):
        DocName.parse("acme", value, "c-1")  # type: ignore[arg-type]
    with pytest.raises(InvalidDocumentName, match="must be a string"):
        DocName.parse("acme", "cart", value)  # type: ignore[arg-type]
    with pytest.raises(InvalidDocumentName, match="must be a string"):
        DocName.from_string(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "acme",
        "acme/cart",
        "acme/cart/",
        "/acme/cart/c-1",
        "acme/cart/c-1/",
        "acme//cart/c-1",
        "acme/cart/c-1/extra",
        "acme/cart/../other",
        "acme/cart/..",
        "../other/cart/c-1",
        "other/cart/%2e%2e",
        "acme%2Fcart%2Fc-1",
        "acme%252Fcart/cart/c-1",
        "ａｃｍｅ/cart/c-1",
        "acme\x00/cart/c-1",
        "acme/cart/c-1\x00",
        "acme/cart/c-1\n",
        "acme\\cart\\c-1",
        "acme/cart/" + "c" * 129,
        "//",
        "///",
    ],
)
def test_from_string_refuses_anything_but_three_valid_parts(text: str) -> None:
    with pytest.raises(InvalidDocumentName):
        DocName.from_string(text)


def test_error_is_a_typed_value_error_with_attributes() -> None:
    with pytest.raises(InvalidDocumentName) as info:
        DocName.from_string("acme/cart")
    error = info.value
    assert isinstance(error, EngineError) and isinstance(error, ValueError)
    assert error.name == "acme/cart"
    assert error.reason == "must have exactly three parts: tenant/kind/id"


def test_error_message_stays_short_for_huge_names() -> None:
    huge = "x" * 100_000
    with pytest.raises(InvalidDocumentName) as info:
        DocName.parse(huge, "cart", "c-1")
    assert info.value.name == huge  # the attribute keeps the whole input
    assert len(str(info.value)) < 300


# -- the raw path guard ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"/sync/acme/cart/c-1", b"/sync/acme/stock/wh.1", b"/sync/a~b/cart/a_b-c.d", b"/sync/", b"/sync/acme"],
)
def test_raw_path_of_plain_names_passes(raw: bytes) -> None:
    check_raw_path(raw, PREFIX)


@pytest.mark.parametrize(
    "raw",
    [
        b"/sync/acme%2Fcart%2Fc-1",  # encoded slashes: one route segment, three names
        b"/sync/acme%2fcart/c-1",
        b"/sync/acme/cart/%2e%2e",  # encoded dot segment
        b"/sync/acme/cart/%2E%2E%2Fother",
        b"/sync/acme%252Fcart/cart/c-1",  # double encoding
        b"/sync/acme/cart/c%00",  # encoded NUL
        b"/sync/acme/cart/c%",  # a bare percent
        b"/sync/%61cme/cart/c-1",  # even an encoded plain letter
        b"/sync%2Facme/cart/c-1",  # in the prefix too
    ],
)
def test_raw_path_with_percent_encoding_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidDocumentName, match="percent-encoded"):
        check_raw_path(raw, PREFIX)


@pytest.mark.parametrize(
    "raw",
    [
        "/sync/ａｃｍｅ/cart/c-1".encode(),
        "/sync/acme/cart/café".encode(),
        b"/sync/acme/cart/\xff",
        b"/sync/acme/cart/\xc0\xaf",  # overlong UTF-8 "/"
        b"/sync/acme\xe2\x88\x95cart/c-1",  # DIVISION SLASH
    ],
)
def test_raw_path_with_non_ascii_bytes_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidDocumentName, match="non-ASCII"):
        check_raw_path(raw, PREFIX)


@pytest.mark.parametrize(
    "raw",
    [
        b"/sync/acme/cart/../../other/cart/c-1",
        b"/sync/other/cart/..",
        b"/sync/./acme/cart/c-1",
        b"/sync/acme/./c-1",
        b"/sync/..",
    ],
)
def test_raw_path_with_dot_segments_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidDocumentName, match="dot segments"):
        check_raw_path(raw, PREFIX)


@pytest.mark.parametrize(
    "raw",
    [
        b"/sync/acme/cart/c\x00",
        b"/sync/acme/cart/c 1",
        b"/sync/acme\\cart\\c-1",
        b"/sync/acme/cart/c-1?token=x",
        b"/sync/acme/cart/c-1#frag",
        b"/sync/acme/cart/c\n",
        b"/sync/acme;x/cart/c-1",
    ],
)
def test_raw_path_with_other_characters_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidDocumentName, match="may hold only"):
        check_raw_path(raw, PREFIX)


@pytest.mark.parametrize(
    "raw", [b"/other/acme/cart/c-1", b"/sync", b"", b"sync/acme/cart/c-1", b"/SYNC/acme/cart/c-1"]
)
def test_raw_path_outside_the_prefix_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidDocumentName, match="must start with"):
        check_raw_path(raw, PREFIX)


def test_raw_path_error_shows_the_path_without_crashing_on_binary() -> None:
    with pytest.raises(InvalidDocumentName) as info:
        check_raw_path(b"/sync/\xff\x00", PREFIX)
    assert info.value.name == "/sync/\\xff\x00"


# -- properties --------------------------------------------------------------------------

_VALID_PART = st.from_regex(re.compile(PART_PATTERN, re.ASCII), fullmatch=True)
_NAMEISH = st.text(alphabet=st.sampled_from("ac-./%2Ft\x00 ａé~_"), max_size=20)


@given(
    st.one_of(
        st.text(), _NAMEISH, st.builds("/".join, st.lists(st.one_of(_NAMEISH, _VALID_PART), max_size=4))
    )
)
def test_any_string_parses_to_a_round_tripping_name_or_raises_the_typed_error(text: str) -> None:
    try:
        name = DocName.from_string(text)
    except InvalidDocumentName:
        return
    assert str(name) == text
    assert DocName.from_string(str(name)) == name


@given(st.text(), st.one_of(st.sampled_from(KINDS), st.text()), st.text())
def test_any_three_strings_parse_to_those_parts_or_raise_the_typed_error(a: str, kind: str, b: str) -> None:
    try:
        name = DocName.parse(a, kind, b)
    except InvalidDocumentName:
        return
    assert name.parts == (a, kind, b)
    assert DocName.from_string(str(name)) == name


@given(_VALID_PART, st.sampled_from(KINDS), _VALID_PART)
def test_every_name_matching_the_rules_is_accepted(tenant: str, kind: str, doc_id: str) -> None:
    name = DocName.parse(tenant, kind, doc_id)
    assert DocName.from_string(str(name)) == name
    check_raw_path(PREFIX + str(name).encode("ascii"), PREFIX)


@given(st.binary(max_size=40).map(lambda tail: PREFIX + tail))
def test_a_raw_path_that_passes_means_the_same_once_percent_decoded(raw: bytes) -> None:
    try:
        check_raw_path(raw, PREFIX)
    except InvalidDocumentName:
        return
    assert unquote_to_bytes(raw) == raw
    assert raw.isascii()
    assert all(segment not in (b".", b"..") for segment in raw.split(b"/"))
