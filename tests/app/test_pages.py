"""The browser pages: ``/demo/`` and ``/v1/docs/`` served from the package's static files,
``/`` redirecting to the demo; then a real ``syncline serve`` whose banner gives the demo's
address with a working token, and the docs page rendered by a real Chromium."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from syncline.adapters.rest.openapi import openapi_document
from syncline.app.pages import DEMO_DIR, DOCS_DIR
from tests.rest.inprocess import InProcessRelay

STARTUP_SECONDS = 20.0


@pytest.fixture
def http(plain_relay: InProcessRelay) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=plain_relay.http_url, timeout=10.0) as client:
        yield client


def test_the_root_and_the_bare_page_paths_redirect_to_the_pages(http: httpx.Client) -> None:
    for path, target in (("/", "/demo/"), ("/demo", "/demo/"), ("/v1/docs", "/v1/docs/")):
        response = http.get(path)
        assert response.status_code in (302, 307), path
        assert urlsplit(response.headers["location"]).path == target
        assert http.get(path, follow_redirects=True).status_code == 200


@pytest.mark.parametrize("page", ["/demo/", "/v1/docs/"])
def test_a_page_and_every_asset_it_references_are_served_with_their_type_and_revalidated(
    http: httpx.Client, page: str,
) -> None:
    index = http.get(page)
    assert index.status_code == 200
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert index.text.lstrip().lower().startswith("<!doctype html>")
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    assets = [ref for ref in re.findall(r'(?:src|href)="([^"#:?]+)"', index.text) if not ref.startswith("../")]
    for ref in [page, *(page + ref.removeprefix("./") for ref in assets)]:
        response = http.get(ref)
        assert response.status_code == 200, ref
        suffix = Path(ref).suffix
        if suffix in types:
            assert response.headers["content-type"] == types[suffix], ref
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
        again = http.get(ref, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304, ref
    if page == "/v1/docs/":
        assert {"docs.js", "docs.css"} <= set(assets)


def test_the_files_served_are_the_packages_own(http: httpx.Client) -> None:
    assert http.get("/v1/docs/docs.js").content == (DOCS_DIR / "docs.js").read_bytes()
    assert http.get("/demo/").content == (DEMO_DIR / "index.html").read_bytes()


def test_a_missing_file_is_a_404_problem_and_writes_are_not_allowed(http: httpx.Client) -> None:
    missing = http.get("/v1/docs/nothing.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    escape = http.get("/demo/..%2F..%2Fcli.py")
    assert escape.status_code == 404
    assert http.post("/demo/", content=b"x").status_code == 405


# -- a real syncline serve ---------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """``syncline serve`` on a fresh data directory (so it prints a development token): its
    address and its banner."""
    process = subprocess.Popen(
        [sys.executable, "-m", "syncline.app.cli", "serve", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert process.stdout is not None
        banner: list[str] = []
        while not any(line.lstrip().startswith("Demo") for line in banner):
            line = process.stdout.readline()
            assert line, f"syncline serve exited: {banner}"
            banner.append(line.rstrip("\n"))
        base = banner[0].split()[4]
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _ready(base):
            assert time.monotonic() < deadline, "syncline serve never became ready"
            time.sleep(0.02)
        yield base, banner
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()


def _ready(base: str) -> bool:
    try:
        return httpx.get(base + "/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_syncline_serve_prints_the_demo_address_with_a_token_that_works(served: tuple[str, list[str]]) -> None:
    base, banner = served
    assert base.startswith("http://127.0.0.1:")
    assert f"  API docs: {base}/v1/docs/" in banner
    demo = next(line for line in banner if line.lstrip().startswith("Demo"))
    address = demo.split(": ", 1)[1]
    parts = urlsplit(address)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == base + "/demo/"
    fragment = parse_qs(parts.fragment)
    token, tenant = fragment["token"][0], fragment["tenant"][0]
    assert tenant == "demo"
    with httpx.Client(base_url=base, timeout=10.0, headers={"Authorization": f"Bearer {token}"}) as http:
        page = http.get(parts.path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert http.get("/v1/docs/").status_code == 200
        assert http.get("/v1/docs/docs.js").headers["content-type"].startswith("text/javascript")
        # The token in the fragment is the tenant's: it reads and writes the tenant's documents.
        assert http.get(f"/v1/tenants/{tenant}/carts/c-1").status_code == 200
        assert http.get("/v1/tenants/acme/carts/c-1").status_code == 403


def test_chromium_renders_every_operation_of_the_served_document_on_the_docs_page(
    served: tuple[str, list[str]], tmp_path: Path,
) -> None:
    chromium = shutil.which("chromium")
    assert chromium is not None, "Debian's chromium is needed (apt-get install chromium)"
    base, _ = served
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom", base + "/v1/docs/"],
        capture_output=True, text=True, timeout=90,
    )
    dom = done.stdout
    assert 'data-state="ready"' in dom, dom[:2000] + done.stderr[-2000:]
    document = openapi_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            section = re.search(rf'<section class="operation" id="operation-{operation["operationId"]}".*?</h3>',
                                dom, re.S)
            assert section is not None, operation["operationId"]
            assert f">{method.upper()}</span>" in section.group(0)
            assert f">{path}</code>" in section.group(0)
    for tag in document["tags"]:
        assert f'data-testid="tag-{tag["name"]}"' in dom
    for name in document["components"]["schemas"]:
        assert f'data-testid="schema-{name}"' in dom
    # References are resolved: the add-item body shows AddItem's properties, not just its name.
    add_item = dom.split('id="operation-addCartItem"', 1)[1].split('<section class="operation"', 1)[0]
    assert "<code>product</code>" in add_item and "<code>attributes</code>" in add_item
