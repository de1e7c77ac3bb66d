"""``syncline token``: an explicit secret, a default expiry, a warning for a never-served data
directory, and ``--inspect`` saying whether a relay accepts a token and why not (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from syncline.engine.tokens import verify_token

SECRET = "inspect-secret-" + "k" * 40


def _syncline(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SYNCLINE_")}
    return subprocess.run([sys.executable, "-m", "syncline.app.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env={**environ, **(env or {})})


@dataclass
class Served:
    data_dir: Path
    base: str
    token: str
    process: subprocess.Popen[str]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``syncline serve`` on a new data directory (a generated secret), and its banner's dev token."""
    data_dir = tmp_path / "syncline-data"
    process = subprocess.Popen(
        [sys.executable, "-m", "syncline.app.cli", "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(5)]
        base = banner[0].split("listening on http://", 1)[1].split()[0]
        token = banner[3].strip()
        assert banner[4] == f"  export TOKEN={token}\n", banner
        yield Served(data_dir, base, token, process)
    finally:
        process.terminate()
        process.communicate(timeout=15)


def test_a_token_made_without_ttl_expires_in_seven_days_and_ttl_0_never(tmp_path: Path) -> None:
    week = _syncline("token", "--secret", SECRET, "--tenant", "acme", "--doc", "acme/*")
    never = _syncline("token", "--secret", SECRET, "--tenant", "acme", "--doc", "acme/*", "--ttl", "0")
    assert week.returncode == never.returncode == 0 and week.stderr == never.stderr == ""
    expires = verify_token(SECRET, week.stdout.strip()).expires_at
    assert expires is not None and abs(expires - (time.time() + 7 * 24 * 3600)) < 60
    assert verify_token(SECRET, never.stdout.strip()).expires_at is None


def test_a_token_from_a_data_dir_no_relay_has_served_comes_with_a_warning(tmp_path: Path) -> None:
    done = _syncline("token", "--data-dir", str(tmp_path / "elsewhere"), "--tenant", "acme", "--doc", "acme/*")
    assert done.returncode == 0
    assert done.stdout.count("\n") == 1 and done.stdout.startswith("eyJ")
    [warning] = done.stderr.splitlines()
    assert warning.startswith("syncline token: warning: no relay has served") and "--data-dir" in warning
    assert (tmp_path / "elsewhere" / ".gitignore").read_text() == "*\n"


def test_a_token_from_the_relays_data_dir_works_without_a_warning(served: Served) -> None:
    done = _syncline("token", "--data-dir", str(served.data_dir), "--tenant", "demo", "--doc", "demo/cart/*")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    answer = httpx.get(f"http://{served.base}/v1/tenants/demo/carts/c-1",
                       headers={"Authorization": f"Bearer {done.stdout.strip()}"})
    assert answer.status_code in (200, 404), answer.text  # admitted: not 401


def test_the_banner_token_is_accepted_by_inspect(served: Served) -> None:
    done = _syncline("token", "--data-dir", str(served.data_dir), "--inspect", served.token,
                     "--tenant", "demo", "--doc", "demo/cart/c-1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == f"accepted by the secret of {served.data_dir}"
    assert "tenant: demo" in done.stdout and "docs: demo/*" in done.stdout


def _signed(claims: dict[str, object], secret: str = SECRET) -> str:
    base: dict[str, object] = {"iss": "syncline", "tenant": "acme", "docs": ["acme/cart/*"], "iat": int(time.time())}
    return jwt.encode({**base, **claims}, secret, algorithm="HS256")


@pytest.mark.parametrize(("token", "flags", "why"), [
    (_signed({}, "another-secret-" + "q" * 40), [], "signature does not verify"),
    (_signed({"exp": 1_000_000}), [], "expired at 1970-01-12T13:46:40Z"),
    (_signed({"iss": "auth0"}), [], "issuer is not syncline"),
    (_signed({"aud": "shop"}), [], "aud claim"),
    (_signed({}), ["--tenant", "globex"], "belongs to tenant 'acme', not 'globex'"),
    (_signed({}), ["--doc", "acme/stock/main"], "does not cover acme/stock/main"),
    ("not-a-token", [], "not a signed JWT"),
])
def test_inspect_says_why_a_token_is_refused(token: str, flags: list[str], why: str) -> None:
    done = _syncline("token", "--secret", SECRET, "--inspect", token, *flags)
    assert done.returncode == 1, done.stdout + done.stderr
    verdict = done.stdout.splitlines()[-1]
    assert verdict.startswith("refused by the given secret: ") and why in verdict, verdict


def test_inspect_of_a_data_dir_without_a_secret_says_so(tmp_path: Path) -> None:
    done = _syncline("token", "--data-dir", str(tmp_path), "--inspect", _signed({}))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"syncline token: {tmp_path} has no secret") and done.stderr.count("\n") == 1
    assert not (tmp_path / "secret").exists()


def test_serve_refusals_are_logged_with_their_reason(served: Served) -> None:
    foreign = _signed({"tenant": "demo", "docs": ["demo/*"]})  # another secret than the relay's
    answer = httpx.get(f"http://{served.base}/v1/tenants/demo/carts/c-1",
                       headers={"Authorization": f"Bearer {foreign}"})
    assert answer.status_code == 401
    served.process.terminate()
    _, err = served.process.communicate(timeout=15)
    [line] = [line for line in err.splitlines() if "/v1/tenants/{tenant}/carts/{cart_id} 401" in line]
    assert 'cause=invalid_token detail="signature does not verify"' in line, err
    assert foreign.split(".")[2] not in err
