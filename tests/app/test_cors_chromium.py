"""CORS as a browser enforces it: a page on another origin, in a real Chromium, calls REST
(preflighted writes with Authorization, Idempotency-Key and If-Match, reading the exposed
ETag) and follows the change feed with EventSource; on an origin not allowed, both fail."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.catalog import CATALOG, load_catalog
from tests.rest.inprocess import InProcessRelay

PAGE = """<!doctype html><html><body><pre id="out">running</pre><script type="module">
const relay = %(relay)s, token = %(token)s, cart = relay + "/v1/tenants/acme/carts/c-browser";
const out = {};
const show = () => { document.getElementById("out").textContent = JSON.stringify(out); };
try {
  const feed = new EventSource(relay + "/v1/tenants/acme/events?doc=cart/c-browser&token=" + token);
  const heard = new Promise((resolve) => feed.addEventListener("cart.changed", (e) => resolve(JSON.parse(e.data))));
  const opened = new Promise((resolve, reject) => { feed.onopen = resolve; feed.onerror = () => reject(new Error("feed")); });
  try { await opened; } catch (error) { out.feedError = String(error); feed.close(); }
  const headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"};
  const added = await fetch(cart + "/items", {method: "POST", headers: {...headers, "Idempotency-Key": "b-1"},
                                               body: JSON.stringify({product: "tee", quantity: 1})});
  out.etag = added.headers.get("ETag");
  const line = (await added.json()).lines[0].id;
  const set = await fetch(cart + "/lines/" + line, {method: "PUT", body: JSON.stringify({quantity: 3}),
                          headers: {...headers, "Idempotency-Key": "b-2", "If-Match": out.etag}});
  out.quantity = (await set.json()).lines[0].quantity;
  if (out.feedError === undefined) out.event = (await heard).doc;
  feed.close();
} catch (error) {
  out.error = String(error);
}
show();
</script></body></html>"""


class _Page(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run_page(tmp_path: Path, page_server: ThreadingHTTPServer, allowed: str) -> dict[str, object]:
    chromium = shutil.which("chromium")
    assert chromium is not None, "Debian's chromium is needed (apt-get install chromium)"
    load_catalog(tmp_path / "relay", "acme", CATALOG)
    relay = InProcessRelay(tmp_path / "relay", cors_origin=(allowed,)).start()
    try:
        _Page.body = (PAGE % {"relay": json.dumps(relay.http_url), "token": json.dumps(relay.token("acme"))}).encode()
        origin = f"http://127.0.0.1:{page_server.server_address[1]}"
        done = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", "--dump-dom", origin + "/"],
            capture_output=True, text=True, timeout=90,
        )
    finally:
        relay.stop()
    text = done.stdout.split('<pre id="out">', 1)[1].split("</pre>", 1)[0]
    assert text != "running", done.stderr[-2000:]
    result: dict[str, object] = json.loads(text.replace("&quot;", '"').replace("&amp;", "&"))
    return result


def test_a_page_of_an_allowed_origin_writes_with_preflights_reads_the_etag_and_follows_the_feed(
    tmp_path: Path, page_server: ThreadingHTTPServer,
) -> None:
    result = _run_page(tmp_path, page_server, f"http://127.0.0.1:{page_server.server_address[1]}")
    assert "error" not in result, result
    assert isinstance(result["etag"], str) and result["etag"].startswith('"')
    assert result["quantity"] == 3  # the If-Match with the exposed ETag was accepted
    assert result["event"] == "acme/cart/c-browser"


def test_a_page_of_an_origin_not_allowed_can_neither_follow_the_feed_nor_call_rest(
    tmp_path: Path, page_server: ThreadingHTTPServer,
) -> None:
    result = _run_page(tmp_path, page_server, "http://127.0.0.1:1")
    assert result["feedError"] == "Error: feed"
    assert str(result["error"]).startswith("TypeError")  # the browser refused the write's answer
    assert "etag" not in result
