"""Reading request bodies strictly: media type, size, JSON syntax, then field by field.

Every refusal is a :class:`~.problems.Problem`: 415 for another media type, 413 past
the size limit, 400 for bytes that are not one JSON object (including NaN, Infinity,
duplicate keys, lone surrogates and nesting past a fixed depth), 422 for a value
outside its rules or a field the endpoint does not know.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request

from syncline.engine import ValidationError

from .problems import Problem, validation_problem

T = TypeVar("T")

MAX_DEPTH = 16


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, or a Problem saying why it is not one."""
    content_type = request.headers.get("content-type", "")
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "application/json":
        raise Problem("unsupported-media-type", f"got {content_type or 'no Content-Type'!s:.80}")
    charset = params.strip().lower()
    if charset and charset.replace(" ", "") not in ("charset=utf-8", 'charset="utf-8"'):
        raise Problem("unsupported-media-type", "only the UTF-8 charset is accepted")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise Problem("payload-too-large", f"the limit is {max_bytes} bytes", limit=max_bytes)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise Problem("payload-too-large", f"the limit is {max_bytes} bytes", limit=max_bytes)
    except ClientDisconnect:  # gone mid-body (or dropped by the request deadline): nothing to apply
        raise Problem("malformed-json", "the body ended before its Content-Length") from None
    return parse_json_object(bytes(body))


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem("malformed-json", f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except _JSONRefused as exc:
        raise Problem("malformed-json", str(exc)) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise Problem("malformed-json", f"{exc}" if isinstance(exc, json.JSONDecodeError) else "nested too deeply")\
            from None
    except ValueError:  # an integer past Python's int-from-string digit limit (4300 digits)
        raise Problem("malformed-json", "a number has too many digits") from None
    if not isinstance(value, dict):
        raise Problem("malformed-json", f"the body must be a JSON object, not {_json_type(value)}")
    _check_depth(value, 0)
    _check_strings(value)
    return value


class _JSONRefused(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _JSONRefused(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _JSONRefused(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def _check_depth(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Problem("malformed-json", f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for item in value.values():
            _check_depth(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_depth(item, depth + 1)


def _check_strings(value: Any) -> None:
    """Refuse lone surrogates (``"\\ud800"``): JSON allows the escape, UTF-8 cannot hold it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _encodable(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                _encodable(key)
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Problem("malformed-json", "a string holds a lone surrogate") from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(
        type(value), type(value).__name__
    )


class Fields:
    """Take the fields of one JSON object, each checked; :meth:`done` refuses the rest.

    ``where`` prefixes field names in errors (``operations[3].delta``).
    """

    def __init__(self, body: Any, where: str = "") -> None:
        if not isinstance(body, dict):
            raise validation_problem(where or "body", f"must be an object, not {_json_type(body)}")
        self._body = body
        self._taken: set[str] = set()
        self._where = where

    def name(self, field: str) -> str:
        return f"{self._where}.{field}" if self._where else field

    def required(self, field: str, check: Callable[[Any, str], T]) -> T:
        self._taken.add(field)
        if field not in self._body:
            raise validation_problem(self.name(field), "is required")
        return self._check(field, check)

    def optional(self, field: str, check: Callable[[Any, str], T], default: T) -> T:
        """The checked value, or ``default`` when the field is absent. An explicit ``null``
        is refused: no optional field is nullable, and a null must not pass for the default."""
        self._taken.add(field)
        if field not in self._body:
            return default
        if self._body[field] is None:
            raise validation_problem(self.name(field), "must not be null (leave it out for its default)")
        return self._check(field, check)

    def raw(self, field: str) -> Any:
        self._taken.add(field)
        return self._body.get(field)

    def done(self) -> None:
        unknown = sorted(set(self._body) - self._taken)
        if unknown:
            shown = ", ".join(repr(name[:64]) for name in unknown[:5])
            raise validation_problem(self.name(unknown[0][:64]), f"unknown field (unknown: {shown})")

    def _check(self, field: str, check: Callable[[Any, str], T]) -> T:
        try:
            return check(self._body[field], self.name(field))
        except ValidationError as exc:
            raise validation_problem(exc.field, exc.reason) from None


def string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {_json_type(value)}")
    return value


def integer(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {_json_type(value)}")
    return value


def obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(field, f"must be an object, not {_json_type(value)}")
    return value


def array(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationError(field, f"must be an array, not {_json_type(value)}")
    return value


def one_of(*choices: str) -> Callable[[Any, str], str]:
    def check(value: Any, field: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValidationError(field, f"must be one of {', '.join(choices)}")
        return value

    return check
