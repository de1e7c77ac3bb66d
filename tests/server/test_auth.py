"""The relay's side of tokens: reading one from a request, and the secret file in DATA_DIR."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from starlette.datastructures import Headers, QueryParams

from syncline.engine.tokens import MIN_SECRET_CHARS, issue_token, verify_token
from syncline.server.auth import load_or_create_secret, token_from_request
from syncline.server.errors import DataDirError, SecretFileError
from tests.engine.helpers import assert_quiet

NOW = 1_700_000_000


# -- reading the token from a request ----------------------------------------------------


def test_bearer_header_comes_first() -> None:
    headers = Headers({"authorization": "Bearer header-token"})
    assert token_from_request(headers, QueryParams("token=query-token")) == "header-token"


def test_query_parameter_is_used_without_a_header() -> None:
    assert token_from_request(Headers({}), QueryParams("token=query-token")) == "query-token"
    assert token_from_request({}, {"access": "t"}, query_name="access") == "t"


@pytest.mark.parametrize("value", ["bearer t", "BEARER t", "Bearer   t  ", "  Bearer t"])
def test_bearer_scheme_is_case_insensitive_and_trimmed(value: str) -> None:
    assert token_from_request(Headers({"authorization": value}), QueryParams("")) == "t"


def test_plain_dict_headers_match_case_insensitively() -> None:
    assert token_from_request({"Authorization": "Bearer t"}, {}) == "t"


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token t", "", "Bearert"])
def test_non_bearer_or_empty_authorization_falls_back_to_the_query(value: str) -> None:
    headers = Headers({"authorization": value})
    assert token_from_request(headers, QueryParams("token=q")) == "q"
    assert token_from_request(headers, QueryParams("")) is None


def test_no_token_anywhere_is_none() -> None:
    assert token_from_request(Headers({}), QueryParams("")) is None
    assert token_from_request(Headers({}), QueryParams("token=")) is None
    assert token_from_request(Headers({}), QueryParams("other=x")) is None


# -- the secret file -------------------------------------------------------------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_is_created_owner_only_and_then_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "deep" / "data"
    secret = load_or_create_secret(data_dir)
    assert len(secret) >= 64
    assert mode_of(data_dir / "secret") == 0o600
    assert mode_of(data_dir) == 0o700 & ~_umask()
    assert (data_dir / "secret").read_text() == secret
    assert load_or_create_secret(data_dir) == secret
    assert verify_token(secret, issue_token(secret, "acme", ["acme/*"], now=NOW), now=NOW).tenant == "acme"


def test_secret_file_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_secret(tmp_path)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "secret") == 0o600


def test_each_data_dir_gets_its_own_random_secret(tmp_path: Path) -> None:
    assert load_or_create_secret(tmp_path / "a") != load_or_create_secret(tmp_path / "b")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o620, 0o602, 0o610, 0o777])
def test_existing_secret_readable_or_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret"
    path.write_text("k" * 64)
    path.chmod(mode)
    with pytest.raises(SecretFileError, match="permissions") as info:
        load_or_create_secret(tmp_path)
    assert info.value.path == path
    assert_quiet(info.value, "k" * 64)
    assert path.read_text() == "k" * 64  # left untouched


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_existing_owner_only_secret_is_read_and_trimmed(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret"
    path.write_text("k" * 40 + "\n")
    path.chmod(mode)
    assert load_or_create_secret(tmp_path) == "k" * 40


@pytest.mark.parametrize("content", ["", "\n", "short", "k" * (MIN_SECRET_CHARS - 1), " " * 64])
def test_existing_secret_that_is_too_short_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "secret"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(SecretFileError, match="at least") as info:
        load_or_create_secret(tmp_path)
    if content.strip():
        assert_quiet(info.value, content.strip())


def test_existing_secret_that_is_not_text_is_refused_without_quoting_it(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"\xff\xfe" + b"k" * 40)
    path.chmod(0o600)
    with pytest.raises(SecretFileError, match="UTF-8") as info:
        load_or_create_secret(tmp_path)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_huge_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("k" * 100_000)
    path.chmod(0o600)
    with pytest.raises(SecretFileError, match="larger"):
        load_or_create_secret(tmp_path)


def test_secret_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir(mode=0o700)
    with pytest.raises(SecretFileError, match="not a regular file"):
        load_or_create_secret(tmp_path)


def test_secret_path_that_is_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "secret", 0o600)
    with pytest.raises(SecretFileError, match="not a regular file"):
        load_or_create_secret(tmp_path)


def test_dangling_symlink_is_not_followed_to_create_a_secret_elsewhere(tmp_path: Path) -> None:
    data_dir, target = tmp_path / "data", tmp_path / "elsewhere"
    data_dir.mkdir()
    (data_dir / "secret").symlink_to(target)
    with pytest.raises(SecretFileError, match="cannot open"):
        load_or_create_secret(data_dir)
    assert not target.exists()


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    with pytest.raises(DataDirError, match="is not a directory; pass a --data-dir") as info:
        load_or_create_secret(tmp_path / "data")
    assert info.value.path == tmp_path / "data"


def test_a_new_data_dir_gets_a_gitignore_that_ignores_the_secret(tmp_path: Path) -> None:
    load_or_create_secret(tmp_path / "data")
    assert (tmp_path / "data" / ".gitignore").read_text() == "*\n"
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_an_existing_data_dir_is_left_without_a_gitignore(tmp_path: Path) -> None:
    load_or_create_secret(tmp_path)
    assert not (tmp_path / ".gitignore").exists()


def test_existing_secret_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("k" * 64)
    path.chmod(0o600)
    for _ in range(3):
        assert load_or_create_secret(tmp_path) == "k" * 64


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_LOG_SECRET = "log-secret-" + "r" * 40


def _signed(claims: dict[str, object], secret: str = _LOG_SECRET) -> str:
    import jwt

    return jwt.encode({"tenant": "acme", "docs": ["acme/*"], "iat": 1_000, **claims}, secret, algorithm="HS256")


@pytest.mark.parametrize(("token", "reason", "detail"), [
    (None, "missing_token", "carries no token"),
    (_signed({}), "invalid_token", "missing claim iss"),
    (_signed({"iss": "someone-else"}), "invalid_token", "issuer is not syncline"),
    (_signed({"iss": "syncline", "aud": "shop"}), "invalid_token", "audience is not accepted"),
    (_signed({"iss": "syncline"}, "another-secret-" + "q" * 40), "invalid_token", "signature does not verify"),
    (_signed({"iss": "syncline", "exp": 2_000}), "token_expired", "token expired at 2000"),
])
def test_each_token_refusal_is_logged_at_info_with_its_reason_and_never_the_token(
    caplog: pytest.LogCaptureFixture, token: str | None, reason: str, detail: str
) -> None:
    from syncline.server.admission import Admission
    from syncline.server.errors import Refused

    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    with caplog.at_level("INFO", logger="syncline.auth"), pytest.raises(Refused) as refused:
        Admission(_LOG_SECRET).tenant(b"/v1/tenants/acme", b"/v1/tenants/", "acme", headers, {})
    assert refused.value.reason == reason
    [record] = [r for r in caplog.records if r.name == "syncline.auth"]
    assert record.levelname == "INFO"
    assert record.getMessage() == f"token refused: {reason} ({record.detail})"  # type: ignore[attr-defined]
    assert detail in record.getMessage()
    assert token is None or all(part not in record.getMessage() for part in token.split("."))
