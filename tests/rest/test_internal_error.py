"""A handler that fails unexpectedly answers 500 as a problem document that carries the
request's id, and logs the failure once, with that id, instead of twice."""

from __future__ import annotations

import httpx
import pytest

from .inprocess import InProcessRelay


def test_an_unexpected_failure_is_a_500_problem_with_the_request_id_logged_once(
    rest_relay: InProcessRelay, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert rest_relay.app is not None

    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("injected fault")

    # No request can make the relay fail this way on purpose: the fault is put in by hand.
    monkeypatch.setattr(rest_relay.app.state.rest.documents, "open", broken)
    token = rest_relay.token("acme")
    response = httpx.get(f"{rest_relay.http_url}/v1/tenants/acme/carts/c-500",
                         headers={"Authorization": f"Bearer {token}", "X-Request-ID": "boom-42"}, timeout=10)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["X-Request-ID"] == "boom-42"
    assert response.json()["status"] == 500 and "injected fault" not in response.text

    monkeypatch.undo()
    healthy = httpx.get(f"{rest_relay.http_url}/v1/tenants/acme/carts/c-500",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert healthy.status_code == 200  # the relay serves on

    log = rest_relay.log()
    assert log.count("RuntimeError: injected fault") == 1, log  # one traceback: ours, not uvicorn's again
    assert "Exception in ASGI application" not in log
    assert "unhandled error on GET /v1/tenants/acme/carts/c-500" in log
