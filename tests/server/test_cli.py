"""The `syncline` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from pycrdt import Array
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from syncline.engine import closecodes
from syncline.engine.tokens import verify_token
from syncline.server.settings import Settings

from harness.relay_process import RelayProcess
from harness.ypeer import ypeer


def _syncline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncline.app.cli", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )


def test_token_prints_only_a_token_signed_with_the_data_dir_secret(tmp_path: Path) -> None:
    done = _syncline("token", "--data-dir", str(tmp_path), "--tenant", "acme", "--doc", "acme/cart/*",
                     "--read-only", "--ttl", "60")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert done.stdout == token + "\n"
    secret_file = tmp_path / "secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    grant = verify_token(secret_file.read_text().strip(), token)
    assert (grant.tenant, grant.patterns, grant.read_only) == ("acme", ("acme/cart/*",), True)
    assert grant.expires_at is not None


def test_serve_help_documents_every_setting_with_its_variable() -> None:
    done = _syncline("serve", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for f in fields(Settings):
        assert "--" + f.name.replace("_", "-") in text
        assert "SYNCLINE_" + f.name.upper() in text


def test_operations_doc_lists_every_setting() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for f in fields(Settings):
        assert f"`--{f.name.replace('_', '-')}`" in doc and f"`SYNCLINE_{f.name.upper()}`" in doc


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--port", "70000"], {}, "port"),
        (["--max-rooms", "0"], {}, "max_rooms"),
        ([], {"SYNCLINE_RATE_BURST": "many"}, "rate_burst"),
        (["--sqlite-synchronous", "OFF"], {}, "sqlite_synchronous"),
        (["--secret", "short"], {}, "secret"),
    ],
)
def test_serve_refuses_bad_settings_with_a_message_naming_them(
    tmp_path: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    done = _syncline("serve", "--data-dir", str(tmp_path), *args, env=env)
    assert done.returncode == 2
    assert named in done.stderr and "Traceback" not in done.stderr


def test_serve_without_a_secret_generates_one_and_prints_a_working_dev_token(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "syncline.app.cli", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(5)]
        assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
        base = lines[0].split("listening on http://", 1)[1].split()[0]
        token = lines[3].strip()
        assert lines[3] == token + "\n" and lines[4] == f"  export TOKEN={token}\n"  # the bare token, then the hint
        url = f"ws://{base}/v1/sync/demo/cart/c-1?token={token}"

        import anyio

        async def connect() -> None:
            async with ypeer(url, acks=True) as peer:
                await peer.edit(lambda d: d.get("ops", type=Array).append({"dev": 1}))
                await peer.wait_acked(2)

        anyio.run(connect)
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.anyio
async def test_json_logs_never_contain_tokens(relay_factory: type[RelayProcess]) -> None:
    relay = relay_factory("--log-json", "--log-level", "debug")  # type: ignore[call-arg]
    token = relay.token("acme", "acme/*")
    async with ypeer(relay.url("acme/cart/logged", token)) as peer:
        await peer.edit(lambda d: d.get("ops", type=Array).append({"x": 1}))
    async with connect(relay.url("acme/cart/logged", token + "tampered")) as refused:
        with pytest.raises(ConnectionClosed):
            await refused.recv()
    assert refused.close_code == closecodes.UNAUTHORIZED
    relay.terminate()
    lines = [line for line in relay.log().splitlines() if line.strip()]
    assert lines, "the relay logged nothing"
    for line in lines:
        record = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= record.keys()
    assert token not in relay.log()
    assert token.split(".")[2] not in relay.log()
