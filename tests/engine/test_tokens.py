"""Tokens and grants: forged, expired and malformed input is refused."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncline.engine.errors import AuthError, EngineError, ExpiredToken, InvalidToken, WeakSecret
from syncline.engine.names import DocName
from syncline.engine.tokens import MAX_TOKEN_CHARS, MIN_SECRET_CHARS, Grant, issue_token, verify_token
from tests.engine.helpers import assert_quiet

SECRET = "s" * 20 + "-test-secret-0123456789"
OTHER_SECRET = "o" * 20 + "-other-secret-0123456789"
NOW = 1_700_000_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(obj: Any) -> str:
    return b64(json.dumps(obj).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": "syncline", "tenant": "acme", "docs": ["acme/*"], "ro": False, "iat": NOW}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def signed(payload: dict[str, Any], *, header: dict[str, Any] | None = None, secret: str = SECRET) -> str:
    """A token built by hand and signed with HMAC-SHA256, whatever its header says."""
    signing_input = f"{segment(header or {'alg': 'HS256', 'typ': 'JWT'})}.{segment(payload)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def name(text: str) -> DocName:
    return DocName.from_string(text)


# -- issue and verify ---------------------------------------------------------------


def test_issued_token_verifies_to_the_same_grant() -> None:
    token = issue_token(SECRET, "acme", ["acme/cart/*", "acme/stock/main"], read_only=True, now=NOW)
    grant = verify_token(SECRET, token, now=NOW)
    assert grant == Grant("acme", ("acme/cart/*", "acme/stock/main"), read_only=True, expires_at=None)


def test_issued_token_carries_the_documented_claims() -> None:
    token = issue_token(SECRET, "acme", ("acme/*",), ttl_seconds=60, now=NOW)
    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert payload == {
        "iss": "syncline",
        "tenant": "acme",
        "docs": ["acme/*"],
        "ro": False,
        "iat": NOW,
        "exp": NOW + 60,
    }


def test_token_without_ttl_has_no_exp_and_never_expires() -> None:
    token = issue_token(SECRET, "acme", ["acme/*"], now=NOW)
    assert "exp" not in jwt.decode(token, options={"verify_signature": False})
    grant = verify_token(SECRET, token, now=NOW + 10 * 365 * 86400)
    assert grant.expires_at is None
    assert not grant.is_expired(now=NOW + 10**9)


def test_token_expires_exactly_at_exp() -> None:
    token = issue_token(SECRET, "acme", ["acme/*"], ttl_seconds=60, now=NOW)
    assert verify_token(SECRET, token, now=NOW + 59).expires_at == NOW + 60
    with pytest.raises(ExpiredToken) as info:
        verify_token(SECRET, token, now=NOW + 60)
    assert info.value.expired_at == NOW + 60
    assert isinstance(info.value, AuthError) and not isinstance(info.value, InvalidToken)
    assert_quiet(info.value, token, SECRET)


def test_leeway_allows_a_little_clock_skew_and_no_more() -> None:
    token = issue_token(SECRET, "acme", ["acme/*"], ttl_seconds=60, now=NOW)
    assert verify_token(SECRET, token, now=NOW + 64, leeway=5).tenant == "acme"
    with pytest.raises(ExpiredToken):
        verify_token(SECRET, token, now=NOW + 65, leeway=5)


def test_grant_reports_expiry_for_sessions_that_outlive_the_check() -> None:
    grant = verify_token(SECRET, issue_token(SECRET, "acme", ["acme/*"], ttl_seconds=10, now=NOW), now=NOW)
    assert not grant.is_expired(now=NOW + 9)
    assert grant.is_expired(now=NOW + 10)


def test_expired_check_comes_after_the_signature_check() -> None:
    forged = issue_token(OTHER_SECRET, "acme", ["acme/*"], ttl_seconds=1, now=NOW)
    with pytest.raises(InvalidToken, match="signature"):
        verify_token(SECRET, forged, now=NOW + 3600)


def test_token_issued_in_the_future_is_refused() -> None:
    token = issue_token(SECRET, "acme", ["acme/*"], now=NOW + 100)
    with pytest.raises(InvalidToken, match="future"):
        verify_token(SECRET, token, now=NOW)
    assert verify_token(SECRET, token, now=NOW, leeway=100).tenant == "acme"


def test_token_not_valid_yet_is_refused() -> None:
    token = signed(claims(nbf=NOW + 100))
    with pytest.raises(InvalidToken, match="not valid yet"):
        verify_token(SECRET, token, now=NOW)
    assert verify_token(SECRET, token, now=NOW + 100).tenant == "acme"


def test_float_exp_from_other_issuers_is_accepted_and_rounded_down() -> None:
    token = signed(claims(exp=NOW + 10.7))
    assert verify_token(SECRET, token, now=NOW).expires_at == NOW + 10
    with pytest.raises(ExpiredToken):
        verify_token(SECRET, token, now=NOW + 11)


def test_ro_claim_defaults_to_writable_when_absent() -> None:
    assert verify_token(SECRET, signed(claims(ro=...)), now=NOW).read_only is False


# -- forged and malformed tokens --------------------------------------------------------


def test_token_signed_with_another_secret_is_refused() -> None:
    token = issue_token(OTHER_SECRET, "acme", ["acme/*"], now=NOW)
    with pytest.raises(InvalidToken, match="signature does not verify") as info:
        verify_token(SECRET, token, now=NOW)
    assert_quiet(info.value, token, SECRET, OTHER_SECRET)


@pytest.mark.parametrize("signature", ["", "AAAA", "c2lnbmF0dXJl"])
def test_alg_none_token_is_refused(signature: str) -> None:
    token = f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims())}.{signature}"
    with pytest.raises(InvalidToken) as info:
        verify_token(SECRET, token, now=NOW)
    assert_quiet(info.value, token, SECRET)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_spellings_with_a_signature_are_refused_as_wrong_algorithm(alg: str) -> None:
    token = f"{segment({'alg': alg})}.{segment(claims())}.AAAA"
    with pytest.raises(InvalidToken, match="algorithm"):
        verify_token(SECRET, token, now=NOW)


def test_hs512_token_with_the_right_secret_is_refused() -> None:
    token = jwt.encode(claims(), SECRET + SECRET, algorithm="HS512")  # HS512 wants a 64-byte key
    with pytest.raises(InvalidToken, match="algorithm is not HS256"):
        verify_token(SECRET + SECRET, token, now=NOW)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA", "HS384", "hs256", ""])
def test_other_algorithm_headers_are_refused_even_with_an_hmac_signature(alg: str) -> None:
    # The classic key-confusion attack: claim RS256 but sign with HMAC over the shared key.
    token = signed(claims(), header={"alg": alg, "typ": "JWT"})
    with pytest.raises(InvalidToken, match="algorithm"):
        verify_token(SECRET, token, now=NOW)


def test_header_without_alg_is_refused() -> None:
    with pytest.raises(InvalidToken):
        verify_token(SECRET, signed(claims(), header={"typ": "JWT"}), now=NOW)


def test_tampered_payload_is_refused() -> None:
    token = issue_token(SECRET, "acme", ["acme/cart/c-1"], read_only=True, now=NOW)
    header, _, signature = token.split(".")
    for payload in (
        claims(docs=["acme/*"], ro=True),  # widen the patterns
        claims(docs=["acme/cart/c-1"], ro=False),  # drop read-only
        claims(tenant="other", docs=["other/*"]),  # another tenant
    ):
        forged = f"{header}.{segment(payload)}.{signature}"
        with pytest.raises(InvalidToken, match="signature does not verify"):
            verify_token(SECRET, forged, now=NOW)


def test_tampered_header_is_refused() -> None:
    token = issue_token(SECRET, "acme", ["acme/*"], now=NOW)
    _, payload, signature = token.split(".")
    forged = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': 'x'})}.{payload}.{signature}"
    with pytest.raises(InvalidToken, match="signature does not verify"):
        verify_token(SECRET, forged, now=NOW)


def test_tampered_signature_is_refused() -> None:
    token = issue_token(SECRET, "acme", ["acme/*"], now=NOW)
    head, _, signature = token.rpartition(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(InvalidToken, match="signature does not verify"):
        verify_token(SECRET, f"{head}.{flipped}", now=NOW)
    with pytest.raises(InvalidToken):
        verify_token(SECRET, f"{head}.{signature[:-4]}", now=NOW)


@pytest.mark.parametrize("position", [0, 10, "dot", "end"])
@pytest.mark.parametrize("junk", ["\x00", " ", "\n", "=", "%00", "é", "+", "/"])
def test_junk_characters_inside_a_valid_token_are_refused(position: int | str, junk: str) -> None:
    # base64 decoders skip characters outside their alphabet; a token with junk in it
    # must not stay valid.
    token = issue_token(SECRET, "acme", ["acme/*"], now=NOW)
    if position == "end":
        bad = token + junk
    elif position == "dot":
        cut = token.index(".") + 1
        bad = token[:cut] + junk + token[cut:]
    else:
        assert isinstance(position, int)
        bad = token[:position] + junk + token[position:]
    with pytest.raises(InvalidToken) as info:
        verify_token(SECRET, bad, now=NOW)
    assert_quiet(info.value, token, SECRET)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "x",
        "Bearer",
        "a.b",
        "a.b.c",
        "..",
        "...",
        "a..c",
        "a.b.c.d",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9..sig",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "e30.e30.e30",
        f"{b64(b'[1,2]')}.{segment(claims())}.AAAA",  # header is not an object
        f"{segment({'alg': 'HS256'})}.{b64(b'not json')}.AAAA",
        f"{segment({'alg': 'HS256'})}.{b64(b'[]')}.AAAA",
        f"{b64(b'{')}.{b64(b'{')}.AAAA",
        f"{b64(bytes(range(256)))}.{b64(b'x')}.AAAA",
        "\x00",
        "x" * (MAX_TOKEN_CHARS + 1),
        "ｅｙＪ.ｅｙＪ.ｓｉｇ",
    ],
)
def test_garbage_is_refused_as_invalid_token(garbage: str) -> None:
    with pytest.raises(InvalidToken) as info:
        verify_token(SECRET, garbage, now=NOW)
    assert_quiet(info.value, SECRET)
    if len(garbage) > 3:
        assert_quiet(info.value, garbage)


@pytest.mark.parametrize("value", [None, b"a.b.c", 123, ["a", "b"]])
def test_non_string_token_is_refused(value: object) -> None:
    with pytest.raises(InvalidToken):
        verify_token(SECRET, value, now=NOW)  # type: ignore[arg-type]


def test_huge_but_well_formed_token_is_refused_before_decoding() -> None:
    token = signed(claims(pad="x" * MAX_TOKEN_CHARS))
    with pytest.raises(InvalidToken, match="longer than"):
        verify_token(SECRET, token, now=NOW)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (claims(docs="acme/*"), "docs must be a list"),
        (claims(docs={"acme/*": True}), "docs must be a list"),
        (claims(docs=[]), "grants no documents"),
        (claims(docs=[1]), r"docs\[0\] must be a string"),
        (claims(docs=["acme/*", None]), r"docs\[1\] must be a string"),
        (claims(docs=[["acme/*"]]), r"docs\[0\] must be a string"),
        (claims(docs=["acme/*"] * 257), "more than 256"),
        (claims(tenant=123), "tenant must be a string"),
        (claims(tenant=["acme"]), "tenant must be a string"),
        (claims(tenant=True), "tenant must be a string"),
        (claims(tenant="", docs=["/*"]), "missing claim tenant|tenant"),
        (claims(tenant="..", docs=["../*"]), "tenant"),
        (claims(tenant="ａｃｍｅ", docs=["ａｃｍｅ/*"]), "tenant"),
        (claims(tenant="acme\x00", docs=["acme\x00/*"]), "tenant"),
        (claims(tenant=None), "missing claim tenant"),
        (claims(tenant=...), "missing claim tenant"),
        (claims(docs=...), "missing claim docs"),
        (claims(docs=None), "missing claim docs"),
        (claims(iss=...), "missing claim iss"),
        (claims(iss="someone-else"), "issuer is not syncline"),
        (claims(iss=["syncline"]), "issuer"),
        (claims(ro="false"), "ro must be true or false"),
        (claims(ro=0), "ro must be true or false"),
        (claims(ro=None), "ro must be true or false"),
        (claims(exp="1700000100"), "exp must be a number"),
        (claims(exp=True), "exp must be a number"),
        (claims(exp=[NOW + 100]), "exp must be a number"),
        (claims(iat="now"), "iat must be a number"),
        (claims(nbf={}), "nbf must be a number"),
        (claims(aud="another-service"), "audience"),
        (claims(sub=42), "sub must be a string"),
    ],
)
def test_correctly_signed_token_with_bad_claims_is_refused(payload: dict[str, Any], reason: str) -> None:
    token = signed(payload)
    with pytest.raises(InvalidToken, match=reason) as info:
        verify_token(SECRET, token, now=NOW)
    assert_quiet(info.value, token, SECRET)


def test_nan_and_infinite_times_are_refused() -> None:
    header = segment({"alg": "HS256", "typ": "JWT"})
    for literal in ("NaN", "Infinity", "-Infinity"):
        payload = b64(f'{{"iss":"syncline","tenant":"acme","docs":["acme/*"],"exp":{literal}}}'.encode())
        mac = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        with pytest.raises(InvalidToken):
            verify_token(SECRET, f"{header}.{payload}.{b64(mac)}", now=NOW)


@pytest.mark.parametrize(
    "pattern",
    [
        "other/*",  # another tenant
        "other/cart/c-1",
        "*",  # every tenant
        "*/*",
        "*/cart/c-1",
        "ACME/*",  # tenants are case-sensitive
        "acme2/*",
        "acm/*",
        "ａｃｍｅ/*",
        "acme\x00/*",
        "acme",  # names nothing
        "acme/",
        "acme/cart",
        "acme/cart/",
        "acme//c-1",
        "acme/*/",
        "/acme/*",
        "",
        "acme/**",
        "acme/carts/*",
        "acme/Cart/*",
        "acme/cart/c-*",  # no partial wildcards
        "acme/cart/*c",
        "acme/cart/*/extra",
        "acme/cart/c-1/extra",
        "acme/*/*/*",
        "acme/cart/..",
        "acme/cart/%2e%2e",
        "acme/cart/c%2F1",
        "acme/cart/" + "c" * 129,
        "acme/cart/c-1\n",
    ],
)
def test_bad_pattern_is_refused_on_issue_and_on_verify(pattern: str) -> None:
    with pytest.raises(InvalidToken, match=r"docs\[1\]"):
        issue_token(SECRET, "acme", ["acme/cart/ok", pattern], now=NOW)
    with pytest.raises(InvalidToken, match=r"docs\[1\]"):
        verify_token(SECRET, signed(claims(docs=["acme/cart/ok", pattern])), now=NOW)
    with pytest.raises(InvalidToken):
        Grant("acme", ("acme/cart/ok", pattern))


@pytest.mark.parametrize("tenant", ["", "..", "a/b", "ａｃｍｅ", "acme\x00", "a" * 129, "*", "%2e"])
def test_issue_refuses_a_bad_tenant(tenant: str) -> None:
    with pytest.raises(InvalidToken, match="tenant"):
        issue_token(SECRET, tenant, [f"{tenant}/*"], now=NOW)


@pytest.mark.parametrize("patterns", ["acme/*", [], ()])
def test_issue_refuses_a_lone_string_or_no_patterns(patterns: Any) -> None:
    with pytest.raises(InvalidToken, match="docs"):
        issue_token(SECRET, "acme", patterns, now=NOW)


@pytest.mark.parametrize("ttl", [0, -1, True, 1.5, "60"])
def test_issue_refuses_a_bad_ttl(ttl: Any) -> None:
    with pytest.raises(InvalidToken, match="ttl_seconds"):
        issue_token(SECRET, "acme", ["acme/*"], ttl_seconds=ttl, now=NOW)


def test_issue_refuses_a_non_bool_read_only() -> None:
    with pytest.raises(InvalidToken, match="ro"):
        issue_token(SECRET, "acme", ["acme/*"], read_only="yes", now=NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize("secret", ["", "short", "x" * (MIN_SECRET_CHARS - 1)])
def test_short_secret_is_refused_without_showing_it(secret: str) -> None:
    with pytest.raises(WeakSecret) as info:
        issue_token(secret, "acme", ["acme/*"], now=NOW)
    assert (info.value.length, info.value.minimum) == (len(secret), MIN_SECRET_CHARS)
    if secret:
        assert_quiet(info.value, secret)
    with pytest.raises(WeakSecret):
        verify_token(secret, issue_token(SECRET, "acme", ["acme/*"], now=NOW), now=NOW)


def test_secret_of_minimum_length_works() -> None:
    secret = "k" * MIN_SECRET_CHARS
    assert verify_token(secret, issue_token(secret, "acme", ["acme/*"], now=NOW), now=NOW).tenant == "acme"


@pytest.mark.parametrize("leeway", [-1, float("nan"), float("inf"), "5"])
def test_bad_leeway_is_a_programming_error(leeway: Any) -> None:
    with pytest.raises(ValueError, match="leeway"):
        verify_token(SECRET, issue_token(SECRET, "acme", ["acme/*"], now=NOW), now=NOW, leeway=leeway)


def test_auth_errors_are_typed_engine_errors() -> None:
    assert issubclass(InvalidToken, AuthError) and issubclass(ExpiredToken, AuthError)
    assert issubclass(AuthError, EngineError)
    assert not issubclass(ExpiredToken, InvalidToken) and not issubclass(InvalidToken, ExpiredToken)
    assert InvalidToken("x").reason == "x"


# -- grants and patterns ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "document", "allowed"),
    [
        ("acme/*", "acme/cart/c-1", True),
        ("acme/*", "acme/stock/wh-1", True),
        ("acme/*", "other/cart/c-1", False),
        ("acme/*", "acme2/cart/c-1", False),
        ("acme/*/*", "acme/stock/wh-1", True),
        ("acme/cart/*", "acme/cart/c-1", True),
        ("acme/cart/*", "acme/cart/x", True),
        ("acme/cart/*", "acme/stock/c-1", False),
        ("acme/stock/*", "acme/stock/main", True),
        ("acme/cart/c-1", "acme/cart/c-1", True),
        ("acme/cart/c-1", "acme/cart/c-10", False),
        ("acme/cart/c-1", "acme/cart/c-", False),
        ("acme/cart/c-1", "acme/stock/c-1", False),
        ("acme/cart/c-1", "acme/cart/C-1", False),
        ("acme/*/main", "acme/cart/main", True),
        ("acme/*/main", "acme/stock/main", True),
        ("acme/*/main", "acme/cart/main2", False),
    ],
)
def test_pattern_matching(pattern: str, document: str, allowed: bool) -> None:
    grant = Grant("acme", (pattern,))
    assert grant.allows(name(document)) is allowed


def test_grant_allows_a_document_when_any_pattern_matches() -> None:
    grant = Grant("acme", ("acme/cart/c-1", "acme/stock/*"))
    assert grant.allows(name("acme/cart/c-1"))
    assert grant.allows(name("acme/stock/anything"))
    assert not grant.allows(name("acme/cart/c-2"))


def test_read_only_grant_still_allows_opening_documents() -> None:
    grant = verify_token(SECRET, issue_token(SECRET, "acme", ["acme/*"], read_only=True, now=NOW), now=NOW)
    assert grant.read_only and grant.allows(name("acme/cart/c-1"))


def test_grant_is_frozen_and_holds_a_tuple() -> None:
    grant = Grant("acme", ["acme/*"])  # type: ignore[arg-type]
    assert grant.patterns == ("acme/*",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        grant.read_only = True  # type: ignore[misc]


@given(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,20}", fullmatch=True),
    st.sampled_from(["cart", "stock"]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,20}", fullmatch=True),
)
def test_tenant_star_allows_every_document_of_the_tenant_and_none_of_another(
    tenant: str, kind: str, doc_id: str
) -> None:
    grant = Grant("acme", ("acme/*",))
    assert grant.allows(DocName(tenant, kind, doc_id)) is (tenant == "acme")
    assert Grant("acme", (f"acme/{kind}/*",)).allows(DocName("acme", kind, doc_id))
    assert Grant("acme", (f"acme/*/{doc_id}",)).allows(DocName("acme", kind, doc_id))


@given(st.text(max_size=300))
def test_any_text_as_token_is_refused_with_invalid_token_only(text: str) -> None:
    with pytest.raises(InvalidToken):
        verify_token(SECRET, text, now=NOW)


_TOKEN = issue_token(SECRET, "acme", ["acme/cart/c-1"], read_only=True, now=NOW)
_GRANT = verify_token(SECRET, _TOKEN, now=NOW)


@given(st.integers(0, len(_TOKEN) - 1), st.characters(codec="ascii"))
def test_changing_one_character_of_a_token_never_changes_what_it_grants(index: int, char: str) -> None:
    mutated = _TOKEN[:index] + char + _TOKEN[index + 1 :]
    try:
        grant = verify_token(SECRET, mutated, now=NOW)
    except InvalidToken:
        return
    # Only the unused low bits of the last base64 character can change without effect.
    assert grant == _GRANT


def test_a_subject_is_carried_by_the_token_and_names_the_writer() -> None:
    token = issue_token(SECRET, "acme", ["acme/*"], subject="till-7", now=NOW)
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "till-7"
    grant = verify_token(SECRET, token, now=NOW)
    assert grant.subject == "till-7"
    assert grant.writer == "sub:till-7"
    later = verify_token(SECRET, issue_token(SECRET, "acme", ["acme/*"], subject="till-7", now=NOW + 60), now=NOW + 60)
    assert later.writer == grant.writer


def test_without_a_subject_each_token_is_its_own_writer() -> None:
    first = verify_token(SECRET, issue_token(SECRET, "acme", ["acme/*"], now=NOW), now=NOW)
    again = verify_token(SECRET, issue_token(SECRET, "acme", ["acme/*"], now=NOW), now=NOW)
    other = verify_token(SECRET, issue_token(SECRET, "acme", ["acme/*"], now=NOW + 1), now=NOW + 1)
    assert first.subject is None and first.writer.startswith("token:")
    assert first.writer == again.writer  # the same token string
    assert other.writer != first.writer


@pytest.mark.parametrize("subject", ["", "x" * 257, "a\nb", "\x00", 7, ["a"]])
def test_a_bad_subject_is_refused_when_issued_and_when_verified(subject: object) -> None:
    with pytest.raises(InvalidToken, match="sub"):
        issue_token(SECRET, "acme", ["acme/*"], subject=subject, now=NOW)  # type: ignore[arg-type]
    claims = {"iss": "syncline", "tenant": "acme", "docs": ["acme/*"], "iat": NOW, "sub": subject}
    with pytest.raises(InvalidToken, match="sub"):
        verify_token(SECRET, jwt.encode(claims, SECRET, algorithm="HS256"), now=NOW)
