"""``syncline token``: mint a token with a relay's secret, or ``--inspect`` one against it.

The secret's location is always explicit: ``--data-dir`` (or ``SYNCLINE_DATA_DIR``), whose
``secret`` file the relay serving that directory signs with, or ``--secret`` (or
``SYNCLINE_SECRET``). A token minted from a data directory no relay has served yet is
signed with a secret no relay uses: the command warns on stderr. Every token expires,
:data:`DEFAULT_TTL_SECONDS` after it is made unless ``--ttl`` says otherwise; ``--ttl 0``
is the explicit "never".

``--inspect TOKEN`` prints the token's claims and whether this relay's secret accepts it,
and if not, why (bad signature, expired, another issuer, an audience, another tenant, a
document it does not cover): exit 0 when accepted, 1 when refused.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import jwt

from syncline.engine.errors import ExpiredToken, InvalidDocumentName, InvalidToken
from syncline.engine.names import DocName
from syncline.engine.tokens import ISSUER, issue_token, verify_token
from syncline.server.auth import SECRET_FILE_NAME, load_or_create_secret
from syncline.server.serve import LOCK_FILE
from syncline.server.settings import ENV_PREFIX, Settings

DEFAULT_TTL_SECONDS = 7 * 24 * 3600
"""Lifetime of a token made without ``--ttl``: seven days."""
EXIT_REFUSED = 1
"""Exit status of ``--inspect`` when the relay's secret refuses the token."""


class TokenUsage(ValueError):
    """Raised when ``syncline token`` is called without what it needs; the message says what to add."""


def add_token_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``token`` to the ``syncline`` parser's subparsers."""
    token = commands.add_parser(
        "token", help="print a signed access token on stdout, or --inspect one",
        description="Sign a token with the secret of the relay serving --data-dir (or with --secret). "
        "Tokens expire after 7 days unless --ttl says otherwise (--ttl 0: never). "
        "--inspect TOKEN says whether that relay accepts a token, and why not.",
    )
    token.add_argument("--data-dir", type=Path, default=None,
                       help=f"the relay's data directory, whose secret signs the token [env {ENV_PREFIX}DATA_DIR; "
                            "required unless --secret is given]")
    token.add_argument("--secret", default=None, help=f"sign with this secret instead [env {ENV_PREFIX}SECRET]")
    token.add_argument("--inspect", default=None, metavar="TOKEN",
                       help="check TOKEN against the secret instead of making one (exit 0 accepted, 1 refused); "
                            "with --tenant and --doc, also whether it covers them")
    token.add_argument("--tenant", default=None, help="tenant the token belongs to (required to make one)")
    token.add_argument("--doc", action="append", default=None, dest="docs", metavar="PATTERN",
                       help="document pattern, e.g. acme/* or acme/cart/* or acme/cart/c-1 (repeatable; "
                            "required to make one); with --inspect, a document name to check")
    token.add_argument("--read-only", action="store_true", help="the peer may read and receive, never write")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, metavar="SECONDS",
                       help=f"expire after this many seconds [default {DEFAULT_TTL_SECONDS}, 7 days; 0: never]")
    token.add_argument("--subject", default=None, metavar="NAME",
                       help="the device or user holding the token (the sub claim): the Yjs client IDs it "
                            "writes are bound to it, so re-issued tokens with the same subject keep them")
    return token


def run_token(args: argparse.Namespace, env: Mapping[str, str], out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    """Run ``syncline token``; return the exit status. Raises :class:`TokenUsage` for missing flags."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    settings = Settings.from_sources({"data_dir": args.data_dir, "secret": args.secret}, env)
    if settings.secret is None and args.data_dir is None and not env.get(ENV_PREFIX + "DATA_DIR"):
        raise TokenUsage("say whose secret signs the token: --data-dir DIR (the relay's --data-dir, "
                         "e.g. --data-dir syncline-data) or --secret / SYNCLINE_SECRET")
    if args.inspect is not None:
        return _inspect(args, settings, out)
    if args.tenant is None or not args.docs:
        raise TokenUsage("--tenant and --doc are required to make a token (or pass --inspect TOKEN)")
    if args.ttl < 0:
        raise TokenUsage("--ttl must be a number of seconds, or 0 for a token that never expires")
    if settings.secret is not None:
        secret = settings.secret
    else:
        served = (settings.data_dir / LOCK_FILE).exists()
        secret = load_or_create_secret(settings.data_dir)
        if not served:
            print(f"syncline token: warning: no relay has served {settings.data_dir} yet; this token is signed "
                  f"with its secret, which only `syncline serve --data-dir {settings.data_dir}` will accept",
                  file=err)
    print(issue_token(secret, args.tenant, args.docs, read_only=args.read_only, ttl_seconds=args.ttl or None,
                      subject=args.subject), file=out)
    return 0


def _inspect(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    where = "the given secret"
    if settings.secret is not None:
        secret = settings.secret
    else:
        where = f"the secret of {settings.data_dir}"
        if not (settings.data_dir / SECRET_FILE_NAME).exists():
            raise TokenUsage(f"{settings.data_dir} has no secret: no relay has served it; pass the relay's "
                             "--data-dir or --secret")
        secret = load_or_create_secret(settings.data_dir)
    token = args.inspect.strip()
    for line in _claims(token):
        print(line, file=out)
    verdict = _verdict(secret, token, args.tenant, args.docs or [])
    if verdict is None:
        print(f"accepted by {where}", file=out)
        return 0
    print(f"refused by {where}: {verdict}", file=out)
    return EXIT_REFUSED


def _claims(token: str) -> list[str]:
    """The token's claims as lines, read without checking anything (they may be forged)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return ["claims: unreadable (not a JWT)"]
    lines = []
    for name in ("iss", "aud", "tenant", "docs", "ro", "sub", "iat", "nbf", "exp"):
        if name in claims:
            value = claims[name]
            if name in ("iat", "nbf", "exp") and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = f"{value} ({_when(value)})"
            elif isinstance(value, list):
                value = ", ".join(str(item) for item in value)
            lines.append(f"{name}: {value}")
    if "exp" not in claims:
        lines.append("exp: none (never expires)")
    return lines


def _verdict(secret: str, token: str, tenant: str | None, docs: list[str]) -> str | None:
    """None when ``secret`` accepts ``token`` (for ``tenant`` and each of ``docs`` when given), else why not."""
    try:
        grant = verify_token(secret, token)
    except ExpiredToken as exc:
        return f"expired at {_when(exc.expired_at)}; make a new one (syncline token ... --ttl SECONDS)"
    except InvalidToken as exc:
        return _explain(exc.reason)
    if tenant is not None and grant.tenant != tenant:
        return f"the token belongs to tenant {grant.tenant!r}, not {tenant!r}"
    for doc in docs:
        try:
            name = DocName.parse(*doc.split("/", 2))
        except (InvalidDocumentName, TypeError) as exc:
            return f"{doc!r} is not a document name ({exc})"
        if not grant.allows(name):
            return f"the token does not cover {doc} (it grants {', '.join(grant.patterns)})"
    return None


def _explain(reason: str) -> str:
    if reason == "signature does not verify":
        return ("the signature does not verify: it was signed with another secret (another data directory "
                "or SYNCLINE_SECRET than this relay's)")
    if reason.startswith("issuer is not") or reason == "missing claim iss":
        return f"{reason}: the relay accepts only tokens with iss={ISSUER!r}"
    if reason == "audience is not accepted":
        return "it carries an aud claim, which the relay does not accept"
    return reason


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
