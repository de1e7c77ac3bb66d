"""The OpenAPI 3.1 document: valid, served as written, and in step with the routes.

Validity is checked with the OpenAPI 3.1 meta-schema that schemathesis ships
(``schemathesis.specs.openapi.definitions.OPENAPI_31``, JSON Schema 2020-12 through
jsonschema_rs), each embedded schema against the 2020-12 meta-schema, and every
``$ref`` resolved. Whether the server behaves as documented is schemathesis's job
(``test_schemathesis.py``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31
from starlette.routing import Route

from syncline.adapters.rest.openapi import openapi_document
from syncline.adapters.rest.problems import PROBLEM_BASE, TITLES
from syncline.adapters.rest.routes import rest_routes

from .inprocess import InProcessRelay

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def meta_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema_rs.Draft202012Validator(OPENAPI_31)
    return [f"{'/'.join(map(str, error.instance_path))}: {error.message}" for error in validator.iter_errors(document)]


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references: {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def embedded_schemas(document: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for name, schema in document["components"]["schemas"].items():
        yield f"components/schemas/{name}", schema
    for path, method, operation in operations(document):
        for parameter in operation.get("parameters", []):
            yield f"{method} {path} parameter {parameter['name']}", parameter["schema"]
        for media in operation.get("requestBody", {}).get("content", {}).values():
            yield f"{method} {path} request body", media["schema"]
        for status, response in operation["responses"].items():
            for media in response.get("content", {}).values():
                yield f"{method} {path} {status}", media["schema"]
            for header, spec in response.get("headers", {}).items():
                yield f"{method} {path} {status} header {header}", spec["schema"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Response]:
    relay = InProcessRelay(tmp_path_factory.mktemp("openapi")).start()
    try:
        with relay.client() as anonymous:
            yield anonymous.get("/v1/openapi.json")
    finally:
        relay.stop()


def test_the_served_document_is_the_written_one_without_a_token(served: httpx.Response) -> None:
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert served.json() == openapi_document()


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1.")
    assert meta_errors(document) == []
    # The check can fail: the same document with an operation that lacks its responses does.
    broken = copy.deepcopy(document)
    del broken["paths"]["/v1/health"]["get"]["responses"]
    broken["paths"]["/v1/health"]["get"]["parameters"] = [{"name": "x", "in": "body"}]
    assert len(meta_errors(broken)) >= 1


def test_every_reference_resolves_and_every_schema_is_json_schema_2020_12() -> None:
    document = openapi_document()
    for ref in set(refs(document)):
        assert isinstance(resolve(document, ref), dict), ref
    for where, schema in embedded_schemas(document):
        assert jsonschema_rs.meta.is_valid(schema), where
        # Compiles (patterns are valid regular expressions) with the document's components in reach.
        jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})
        for pattern in _patterns(schema):
            re.compile(pattern)


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


def test_every_route_is_documented_and_every_documented_operation_is_routed() -> None:
    routed = set()
    for route in rest_routes():
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":  # Starlette adds HEAD to every GET
                routed.add((route.path, method.lower()))
    documented = {(path, method) for path, method, _ in operations(openapi_document())}
    assert routed - documented == set(), "routes missing from the document"
    assert documented - routed == set(), "documented operations the server does not route"


def test_every_operation_declares_exactly_its_path_parameters() -> None:
    for path, method, operation in operations(openapi_document()):
        in_path = set(re.findall(r"{([^}]+)}", path))
        declared = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        assert sorted(declared) == sorted(in_path), f"{method} {path}"
        assert all(p["required"] for p in operation.get("parameters", []) if p["in"] == "path")
        names = [(p["name"].lower(), p["in"]) for p in operation.get("parameters", [])]
        assert len(names) == len(set(names)), f"{method} {path} declares a parameter twice"


def test_operations_under_a_tenant_require_the_bearer_token_and_document_401_and_403() -> None:
    document = openapi_document()
    assert document["security"] == [{"bearer": []}, {"guestCookie": []}]
    for path, method, operation in operations(document):
        if path == "/v1/tenants/{tenant}/guest-sessions":  # the one way in without a token
            assert operation.get("security") == [] and "403" in operation["responses"]
        elif path.startswith("/v1/tenants/"):
            assert "security" not in operation, f"{method} {path} must not waive the token"
            assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"
        else:
            assert operation.get("security") == [], f"{method} {path} is public"


def test_every_operation_under_a_tenant_documents_429_with_retry_after() -> None:
    for path, method, operation in operations(openapi_document()):
        if path.startswith("/v1/tenants/"):
            limited = operation["responses"]["429"]
            assert "Retry-After" in limited["headers"], f"{method} {path}"
            assert "application/problem+json" in limited["content"], f"{method} {path}"


def test_the_problem_types_listed_are_the_ones_the_server_uses() -> None:
    listed = openapi_document()["x-problem-types"]
    assert listed == {PROBLEM_BASE + slug: {"status": status, "title": title}
                      for slug, (status, title) in TITLES.items()}


def test_every_served_operation_has_a_unique_operation_id_and_a_declared_tag(served: httpx.Response) -> None:
    document = served.json()
    seen: dict[str, str] = {}
    declared = {tag["name"] for tag in document["tags"]}
    count = 0
    for path, method, operation in operations(document):
        count += 1
        where = f"{method} {path}"
        operation_id = operation.get("operationId")
        assert isinstance(operation_id, str) and re.fullmatch(r"[a-z][A-Za-z0-9]*", operation_id), where
        assert operation_id not in seen, f"{where} reuses {operation_id} of {seen.get(operation_id)}"
        seen[operation_id] = where
        assert len(operation["tags"]) >= 1 and set(operation["tags"]) <= declared, where
    assert count == len(seen) == sum(1 for _ in operations(openapi_document())) > 0


def test_every_operation_takes_a_request_id_and_every_answer_carries_one(served: httpx.Response) -> None:
    for path, method, operation in operations(openapi_document()):
        header = [p for p in operation["parameters"] if p["in"] == "header" and p["name"] == "X-Request-ID"]
        assert len(header) == 1 and not header[0]["required"], f"{method} {path}"
        for status, response in operation["responses"].items():
            assert "X-Request-ID" in response["headers"], f"{method} {path} {status}"
        if path.startswith("/v1/tenants/"):
            assert "500" in operation["responses"], f"{method} {path}"
    assert served.headers["X-Request-ID"]  # and the server does send one
