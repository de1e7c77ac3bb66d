"""/metrics of a relay served by uvicorn on a loopback port: HTTP requests by route template,
cart merges and checkouts, room loads, the event loop's lag, the process and Python
collectors, no ``_created`` series."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.catalog import CATALOG, load_catalog
from harness import prometheus_text
from harness.prometheus_text import series
from tests.rest.inprocess import InProcessRelay

TENANT = "/v1/tenants/acme"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[InProcessRelay]:
    load_catalog(tmp_path / "relay", "acme", CATALOG)
    relay = InProcessRelay(tmp_path / "relay").start()
    try:
        yield relay
    finally:
        relay.stop()


def _api(relay: InProcessRelay) -> httpx.Client:
    return httpx.Client(base_url=relay.http_url, headers={"Authorization": f"Bearer {relay.token('acme')}"})


def test_http_requests_are_counted_by_route_template_and_timed(relay: InProcessRelay) -> None:
    carts = [f"c-{uuid.uuid4().hex[:10]}" for _ in range(3)]
    with _api(relay) as api:
        for cart in carts:
            assert api.get(f"{TENANT}/carts/{cart}").status_code == 200
        assert api.get(f"{TENANT}/carts/{carts[0]}", headers={"Authorization": ""}).status_code == 401
        assert api.get("/nowhere/at/all").status_code == 404
        assert api.patch(f"{TENANT}/carts/{carts[0]}").status_code == 405
        text = api.get("/metrics").text
    samples = prometheus_text.samples(text)
    route = "/v1/tenants/{tenant}/carts/{cart_id}"
    requests = "syncline_http_requests_total"
    assert samples[series(requests, route=route, method="GET", status="200")] == 3
    assert samples[series(requests, route=route, method="GET", status="401")] == 1
    assert samples[series(requests, route=route, method="PATCH", status="405")] == 1
    assert samples[series(requests, route="unmatched", method="GET", status="404")] == 1
    duration = "syncline_http_request_duration_seconds"
    assert samples[series(duration + "_count", route=route, method="GET")] == 4
    assert samples[series(duration + "_bucket", route=route, method="GET", le="+Inf")] == 4
    for cart in carts:  # raw ids never become labels
        assert cart not in text
    assert "nowhere" not in text


def test_a_preflight_answered_before_routing_counts_under_its_route_template(tmp_path: Path) -> None:
    relay = InProcessRelay(tmp_path / "relay", cors_origin=("https://shop.example",)).start()
    try:
        with httpx.Client(base_url=relay.http_url) as http:
            preflight = http.options(f"{TENANT}/carts/c-1/items", headers={
                "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, x-request-id"})
            assert preflight.status_code == 200
            samples = prometheus_text.samples(http.get("/metrics").text)
    finally:
        relay.stop()
    route = "/v1/tenants/{tenant}/carts/{cart_id}/items"
    assert samples[series("syncline_http_requests_total", route=route, method="OPTIONS", status="200")] == 1


def test_cart_merges_checkouts_and_their_failures_are_counted(relay: InProcessRelay) -> None:
    guest, user, other = (f"c-{uuid.uuid4().hex[:10]}" for _ in range(3))
    with _api(relay) as api:
        api.post(f"{TENANT}/carts/{guest}/items", json={"product": "tee", "quantity": 1})
        assert api.post(f"{TENANT}/carts/{guest}/merge", json={"into": user}).status_code == 200
        again = api.post(f"{TENANT}/carts/{guest}/merge", json={"into": other})
        assert again.status_code == 409  # already merged
        body = {"location": "north", "actor": "till-1"}
        assert api.post(f"{TENANT}/carts/{user}/checkout", json=body).status_code == 201
        assert api.post(f"{TENANT}/carts/{user}/checkout", json=body).status_code == 200  # replayed
        assert api.post(f"{TENANT}/carts/{other}/checkout", json=body).status_code == 422  # empty cart
        samples = prometheus_text.samples(api.get("/metrics").text)
    assert samples[series("syncline_cart_merges_total")] == 1
    assert samples[series("syncline_cart_merge_failures_total", cause="already-merged")] == 1
    assert samples[series("syncline_checkouts_total", outcome="placed")] == 1
    assert samples[series("syncline_checkouts_total", outcome="replayed")] == 1
    assert samples[series("syncline_checkout_failures_total", cause="empty-cart")] == 1
    assert samples[series("syncline_room_load_seconds_count")] >= 5  # guest, user, other, the order, the ledger
    assert samples[series("syncline_commit_seconds_count")] >= 1


def test_process_and_python_collectors_are_there_and_no_created_series(relay: InProcessRelay) -> None:
    text = httpx.get(f"{relay.http_url}/metrics").text
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
    assert {
        "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds", "python_info",
        "python_gc_collections_total", "syncline_http_requests_total",
        "syncline_http_request_duration_seconds", "syncline_room_load_seconds", "syncline_cart_merges_total",
        "syncline_cart_merge_failures_total",
        "syncline_checkouts_total", "syncline_checkout_failures_total", "syncline_commit_seconds",
        "syncline_event_loop_lag_seconds", "syncline_gc_pause_seconds", "syncline_gc_frozen_objects",
    } <= families
    assert "_created" not in text
    assert prometheus_text.samples(text)[series("process_resident_memory_bytes")] > 10_000_000


def test_a_stalled_event_loop_shows_in_the_loop_lag_histogram(relay: InProcessRelay) -> None:
    def lags() -> tuple[float, float]:
        """(samples, samples late by more than 0.25 s)"""
        samples = prometheus_text.samples(httpx.get(f"{relay.http_url}/metrics").text)
        count = samples[series("syncline_event_loop_lag_seconds_count")]
        return count, count - samples[series("syncline_event_loop_lag_seconds_bucket", le="0.25")]

    time.sleep(0.3)  # the watch samples every 50 ms
    sampled, late = lags()
    assert sampled >= 2
    assert late == 0  # an idle relay runs its timers on time

    relay.call_in_loop(time.sleep, 0.4)  # nothing else runs in the relay's loop meanwhile

    deadline = time.monotonic() + 5
    while lags()[1] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    # 0.4 s late, less what the timer had left to wait (at most 50 ms): one sample, once
    assert lags()[1] == 1
