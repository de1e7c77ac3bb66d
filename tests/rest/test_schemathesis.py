"""Schemathesis against the live relay: no 5xx, no response the OpenAPI document does not allow.

Runs the ``st run`` command of schemathesis 4 in a subprocess (its own Hypothesis
settings and warnings, none of pytest's) against the relay app served over a loopback
socket by this process (uvicorn, as ``syncline serve`` serves it) with a price catalog,
with an acme token and the ``tenant`` path parameter fixed to ``acme`` so that requests
get past authentication, product names drawn from the
catalog part of the time so that adds succeed, a fixed seed and a bounded number
of examples per operation. The change feed streams forever and is left out here
(``test_feed.py`` covers it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from syncline.adapters.rest.openapi import openapi_document
from syncline.adapters.rest.routes import rest_routes

from .conftest import CATALOG
from .inprocess import InProcessRelay

CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
    "response_headers_conformance", "allow_header_conformance", "ignored_auth", "negative_data_rejection",
])
EXCLUDED = r"/events$"
EXAMPLES = 25
SEED = 20261124

PRODUCTS = sorted(CATALOG["prices"])  # type: ignore[call-overload]
CONFIG = f"""
[parameters]
"path.tenant" = "acme"
"body.product" = {{ dictionary = "products", probability = 0.7 }}

[dictionaries.products]
values = {json.dumps(PRODUCTS)}
"""


def run_schemathesis(tmp_path: Path, location: str, *extra: str, timeout: float = 150) -> tuple[int, str]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color", "run", location,
        "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--seed", str(SEED),
        "--phases", "examples,coverage,fuzzing", "--exclude-path-regex", EXCLUDED,
        "--request-timeout", "10", "--workers", "1", "--output-truncate", "false", *extra,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.timeout(240)
@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_response_outside_the_document(
    rest_relay: InProcessRelay, tmp_path: Path,
) -> None:
    token = rest_relay.token("acme")
    code, output = run_schemathesis(tmp_path, f"{rest_relay.http_url}/v1/openapi.json",
                                    "--header", f"Authorization: Bearer {token}")
    assert code == 0, output[-20_000:]
    selected = re.search(r"Selected:\s+(\d+)/(\d+)", output)
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert selected is not None and tested is not None, output[-5_000:]
    # Every operation but the feed (schemathesis leaves out the document's own URL by itself).
    routed = sum(len(set(getattr(route, "methods", None) or ()) - {"HEAD"}) for route in rest_routes())
    assert int(selected.group(2)) >= routed - 1
    assert int(tested.group(1)) == int(selected.group(1)) == int(selected.group(2)) - 1, output[-5_000:]
    assert "Server error" not in output
    assert "Internal Server Error" not in rest_relay.log()
    assert "Traceback" not in rest_relay.log()


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_the_same_run_fails_when_the_document_and_the_server_disagree(
    rest_relay: InProcessRelay, tmp_path: Path,
) -> None:
    """The harness can fail: a document claiming a cart's total is a string is caught."""
    document = json.loads(json.dumps(openapi_document()))
    document["components"]["schemas"]["Cart"]["properties"]["total"] = {"type": "string"}
    path = tmp_path / "doctored.json"
    path.write_text(json.dumps(document))
    token = rest_relay.token("acme")
    code, output = run_schemathesis(
        tmp_path, str(path), "--url", rest_relay.http_url, "--header", f"Authorization: Bearer {token}",
        "--include-path-regex", r"/carts/\{cart_id\}$", "--include-method", "GET", timeout=90,
    )
    assert code != 0, output[-5_000:]
    assert "Response violates schema" in output, output[-5_000:]
