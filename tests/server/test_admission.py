"""One admission for both edges: each way a request can fail to open a document, and the order of checks."""

from __future__ import annotations

import pytest

from syncline.engine.tokens import Grant, issue_token
from syncline.server.admission import Admission, ConnectionSlots
from syncline.server.errors import Refused

SECRET = "admission-secret-" + "z" * 40
ADMISSION = Admission(SECRET)


def headers(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def sync(path: str, token: str | None, *, write: bool = False, encoded: bool = False) -> object:
    tenant, kind, doc_id = path.split("/")
    raw = f"/v1/sync/{path}".encode()
    return ADMISSION.document(raw, b"/v1/sync/", (tenant, kind, doc_id), headers(token) if token else {}, {},
                              write=write, encoded=encoded)


@pytest.mark.parametrize(("path", "token", "write", "reason"), [
    ("acme/cart/c-1", None, False, "missing_token"),
    ("acme/cart/c-1", "not.a.token", False, "invalid_token"),
    ("acme/cart/c-1", issue_token("another-secret-" + "q" * 40, "acme", ["acme/*"]), False, "invalid_token"),
    ("acme/cart/c-1", issue_token(SECRET, "acme", ["acme/*"], ttl_seconds=1, now=1_000), False, "token_expired"),
    ("acme/cart/c-1", issue_token(SECRET, "globex", ["globex/*"]), False, "forbidden"),
    ("acme/cart/c-1", issue_token(SECRET, "acme", ["acme/stock/*"]), False, "forbidden"),
    ("acme/cart/c-1", issue_token(SECRET, "acme", ["acme/*"], read_only=True), True, "read_only"),
    ("acme/bogus/c-1", issue_token(SECRET, "acme", ["acme/*"]), False, "invalid_document_name"),
    ("acme/cart/..", issue_token(SECRET, "acme", ["acme/*"]), False, "invalid_document_name"),
])
def test_each_refusal_names_its_reason(path: str, token: str | None, write: bool, reason: str) -> None:
    with pytest.raises(Refused) as info:
        sync(path, token, write=write)
    assert info.value.reason == reason
    assert not token or token not in str(info.value)


def test_a_path_is_checked_before_the_token_so_a_smuggled_name_never_reaches_the_grant() -> None:
    with pytest.raises(Refused) as info:
        ADMISSION.document(b"/v1/sync/acme%2Fcart/c-1", b"/v1/sync/", ("acme/cart", "c-1", "x"), {}, {}, write=False)
    assert info.value.reason == "invalid_document_name"


def test_rest_paths_may_hold_harmless_percent_encoding_sync_paths_none() -> None:
    token = issue_token(SECRET, "acme", ["acme/*"])
    raw = b"/v1/tenants/acme/stock/loc-1/levels/t%3Ashirt"
    admitted = ADMISSION.document(raw, b"/", ("acme", "stock", "loc-1"), headers(token), {}, write=False,
                                  encoded=True)
    assert str(admitted.name) == "acme/stock/loc-1"
    for smuggled in (b"/v1/tenants/acme%2Fstock/x", b"/v1/tenants/acme/stock/%2e%2e", b"/v1/tenants/acme/%FF"):
        with pytest.raises(Refused) as info:
            ADMISSION.document(smuggled, b"/", ("acme", "stock", "loc-1"), headers(token), {}, write=False,
                               encoded=True)
        assert info.value.reason == "invalid_document_name"
    with pytest.raises(Refused):
        ADMISSION.document(b"/v1/sync/acme/cart/c%2D1", b"/v1/sync/", ("acme", "cart", "c-1"), headers(token), {},
                           write=False)


def test_an_admitted_request_carries_its_grant_for_further_checks() -> None:
    token = issue_token(SECRET, "acme", ["acme/cart/*"], subject="till-1")
    admitted = sync("acme/cart/c-1", token, write=True)
    assert str(admitted.name) == "acme/cart/c-1"  # type: ignore[attr-defined]
    assert admitted.grant.writer == "sub:till-1"  # type: ignore[attr-defined]
    grant = ADMISSION.tenant(b"/v1/tenants/acme/events", b"/", "acme", headers(token), {}, encoded=True)
    assert grant.subject == "till-1"
    with pytest.raises(Refused) as info:
        ADMISSION.tenant(b"/v1/tenants/globex/events", b"/", "globex", headers(token), {}, encoded=True)
    assert info.value.reason == "forbidden"


def _grant(tenant: str, subject: str | None, token: str = "t") -> Grant:
    return Grant(tenant, (f"{tenant}/*",), subject=subject, token_id=token)


def test_connection_slots_name_the_narrowest_full_cap_and_give_back_what_they_took() -> None:
    slots = ConnectionSlots(total=5, per_tenant=3, per_token=2)
    till = [slots.take(_grant("acme", "till-1")) for _ in range(2)]
    with pytest.raises(Refused) as info:
        slots.take(_grant("acme", "till-1"))
    assert info.value.reason == "token_connections"
    other = slots.take(_grant("acme", "till-2"))
    with pytest.raises(Refused) as info:
        slots.take(_grant("acme", "till-3"))
    assert info.value.reason == "too_many_connections"
    # A subject names its holder within its tenant; without one, the token itself is the holder.
    globex = [slots.take(_grant("globex", "till-1", token=f"g{n}")) for n in range(2)]
    with pytest.raises(Refused) as info:
        slots.take(_grant("initech", None))
    assert info.value.reason == "process_connections"
    assert (slots.total, dict(slots.per_tenant)) == (5, {"acme": 3, "globex": 2})
    for slot in [*till, other, *globex]:
        slots.release(slot)
    assert (slots.total, dict(slots.per_tenant), dict(slots.per_holder)) == (0, {}, {})
    anonymous = [slots.take(_grant("acme", None, token="same")) for _ in range(2)]
    with pytest.raises(Refused) as info:
        slots.take(_grant("acme", None, token="same"))
    assert info.value.reason == "token_connections"
    slots.take(_grant("acme", None, token="another"))
    assert len(anonymous) == 2
