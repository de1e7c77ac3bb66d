"""docs/operations.md's deployment pieces hold: the systemd unit verifies and its command line
parses, and the relay trusts forwarded client addresses only from --forwarded-allow-ips."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from syncline.app.cli import build_parser

from harness.relay_process import RelayProcess

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def block(language: str) -> str:
    (found,) = re.findall(rf"^```{language}\n(.*?)^```", OPERATIONS.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    return str(found)


def exec_start(unit: str) -> list[str]:
    (line,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=").split()


def test_the_systemd_unit_verifies_and_runs_syncline_serve_with_flags_it_knows(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = block("ini")
    command = exec_start(unit)
    assert command[0].endswith("/bin/syncline") and command[1] == "serve"
    args = build_parser().parse_args(command[1:])  # exits (SystemExit) on an unknown flag
    assert args.forwarded_allow_ips == "127.0.0.1" and args.host == "127.0.0.1"
    # The unit as written, but starting the syncline this test runs (systemd checks it exists).
    syncline = Path(sys.executable).with_name("syncline")
    assert syncline.exists()
    path = tmp_path / "syncline.service"
    path.write_text(unit.replace(command[0], str(syncline)))
    done = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr and "ignoring" not in done.stderr, done.stderr


def test_the_nginx_example_forwards_upgrades_and_the_headers_the_relay_reads() -> None:
    nginx = block("nginx")
    for directive in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
                      "proxy_set_header Connection $connection_upgrade;",
                      "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                      "proxy_set_header X-Forwarded-Proto $scheme;", "proxy_buffering off;"):
        assert directive in nginx
    assert "server 127.0.0.1:8787;" in nginx  # where the unit's relay listens


@pytest.fixture
def relay_behind(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RelayProcess]:
    process = RelayProcess(tmp_path / "relay", ["--guest-tenant", "acme", "--rest-burst", "2",
                                                "--rest-rate-per-second", "0.01",
                                                "--forwarded-allow-ips", request.param]).start()
    try:
        yield process
    finally:
        process.stop()


def _sessions(relay: RelayProcess, client_address: str, count: int) -> list[int]:
    with httpx.Client(base_url=relay.http_url, timeout=10) as http:
        return [http.post("/v1/tenants/acme/guest-sessions",
                          headers={"X-Forwarded-For": client_address}).status_code for _ in range(count)]


@pytest.mark.parametrize("relay_behind", ["127.0.0.1"], indirect=True)
def test_a_trusted_proxys_forwarded_addresses_get_rate_limit_buckets_of_their_own(
    relay_behind: RelayProcess,
) -> None:
    assert _sessions(relay_behind, "203.0.113.1", 3) == [201, 201, 429]
    assert _sessions(relay_behind, "203.0.113.2", 2) == [201, 201]


@pytest.mark.parametrize("relay_behind", ["10.9.9.9"], indirect=True)
def test_forwarded_addresses_from_an_untrusted_peer_are_ignored(relay_behind: RelayProcess) -> None:
    assert _sessions(relay_behind, "203.0.113.1", 2) == [201, 201]
    assert _sessions(relay_behind, "203.0.113.2", 1) == [429]  # the same bucket: the peer's own address
