"""The relay's side of tokens: reading one from a request, the secret file in DATA_DIR, and
the log line of a refused token.

Tokens themselves (claims, patterns, :class:`~syncline.engine.tokens.Grant`, issuing
and verifying) are pure and live in :mod:`syncline.engine.tokens`. No log line and no
error message quotes a token or a secret.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from syncline.engine.tokens import MIN_SECRET_CHARS

from .access import note_cause
from .errors import DataDirError, SecretFileError

log = logging.getLogger("syncline.auth")

SECRET_FILE_NAME = "secret"
"""Name of the generated secret inside DATA_DIR."""
GITIGNORE = "*\n"
"""What a new data directory's ``.gitignore`` holds: nothing in it belongs in a repository."""
MAX_SECRET_FILE_BYTES = 4_096
"""Largest secret file read."""

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


GUEST_COOKIE = "syncline_guest"
"""The cookie holding a guest session's token (HTTP-only, Secure, SameSite=Lax)."""


def token_from_request(
    headers: Mapping[str, str], query_params: Mapping[str, str], query_name: str = "token",
    *, cookie: str | None = None,
) -> str | None:
    """The request's token: ``Authorization: Bearer …`` first, else the ``query_name`` parameter,
    else (when ``cookie`` names one) that cookie.

    ``headers`` may be Starlette ``Headers`` or a plain dict (matched case-insensitively).
    Returns None when none holds a non-empty token; the token is not checked here.
    """
    value = headers.get("authorization")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if value is not None:
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    token = query_params.get(query_name)
    if token:
        return token
    return cookie_from_headers(headers, cookie) if cookie is not None else None


def cookie_from_headers(headers: Mapping[str, str], name: str) -> str | None:
    """The value of cookie ``name`` in the request's ``Cookie`` header (None when absent or empty)."""
    value = headers.get("cookie")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "cookie"), None)
    if value is None:
        return None
    for pair in value.split(";"):
        key, sep, cookie = pair.strip().partition("=")
        if sep and key == name and cookie.strip().strip('"'):
            return cookie.strip().strip('"')
    return None


def log_refusal(reason: str, detail: str) -> None:
    """Say, at info, why a request's token was refused: a fixed ``reason`` label and a ``detail``
    that never quotes the token (the engine's messages do not).

    Inside a request or connection the access log serves (:mod:`.access`), the reason goes into
    its one refusal line (``cause=... detail=...``); elsewhere it is a line of its own."""
    if not note_cause(reason, detail):
        log.info("token refused: %s (%s)", reason, detail, extra={"reason": reason, "detail": detail})


def create_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` (0o700) if it is missing, with a ``.gitignore`` that ignores everything in it.

    Raises :class:`DataDirError` saying what to do when the path is a file or cannot be
    created (read-only disk, no permission).
    """
    data_dir = Path(data_dir)
    if data_dir.is_dir():
        return
    if data_dir.exists() or data_dir.is_symlink():
        raise DataDirError(data_dir, "is not a directory; pass a --data-dir that is a directory or does not exist yet")
    try:
        data_dir.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        if not data_dir.is_dir():  # made by someone else meanwhile, or a parent is a file
            raise DataDirError(data_dir, "is not a directory; pass another --data-dir") from None
        return
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise DataDirError(data_dir, "a parent of it is a file; pass another --data-dir") from exc
        raise DataDirError(data_dir, f"cannot create it ({exc.strerror or exc}); pass a --data-dir "
                                     "this user can write") from exc
    try:
        (data_dir / ".gitignore").write_text(GITIGNORE, encoding="ascii")
    except OSError as exc:
        raise DataDirError(data_dir, f"cannot write .gitignore ({exc.strerror or exc})") from exc


def load_or_create_secret(data_dir: Path) -> str:
    """Read ``data_dir/secret``, or create it (owner-only, 0o600) with a new random secret.

    ``data_dir`` is created (0o700, see :func:`create_data_dir`) when missing, and
    :class:`DataDirError` raised when it cannot be. Raises :class:`SecretFileError`
    when the directory or file cannot be made or read, or when an existing file is
    not a regular file, is accessible to group or others, or holds fewer than
    :data:`MIN_SECRET_CHARS` characters.
    """
    data_dir = Path(data_dir)
    create_data_dir(data_dir)
    path = data_dir / SECRET_FILE_NAME
    try:
        # O_EXCL: of two processes starting at once, exactly one creates the file;
        # the mode is set at creation so the secret is never readable by others.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600)
    except FileExistsError:
        return _read_secret(path)
    except OSError as exc:
        raise SecretFileError(path, f"cannot create ({exc.strerror})") from exc
    secret = secrets.token_urlsafe(48)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o600)  # exactly 0o600, whatever the umask
            file.write(secret.encode("ascii"))
            file.flush()
            os.fsync(file.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)  # never leave a partial secret behind
        raise SecretFileError(path, f"cannot write ({exc.strerror})") from exc
    return secret


def _read_secret(path: Path) -> str:
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang start-up.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)
    except OSError as exc:
        raise SecretFileError(path, f"cannot open ({exc.strerror})") from exc
    try:
        # Checked on the open descriptor, not the path: what is read is what was checked.
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SecretFileError(path, "is not a regular file")
        if mode & 0o077:
            raise SecretFileError(
                path, f"has permissions {stat.S_IMODE(mode):04o}; other users may read it (run chmod 600)"
            )
        data = b""
        while len(data) <= MAX_SECRET_FILE_BYTES:
            chunk = os.read(fd, MAX_SECRET_FILE_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise SecretFileError(path, f"cannot read ({exc.strerror})") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SecretFileError(path, f"is larger than {MAX_SECRET_FILE_BYTES} bytes")
    try:
        secret = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretFileError(path, "is not UTF-8 text") from None  # the cause would quote secret bytes
    if len(secret) < MIN_SECRET_CHARS:
        raise SecretFileError(
            path, f"holds {len(secret)} characters; at least {MIN_SECRET_CHARS} are required"
        )
    return secret
