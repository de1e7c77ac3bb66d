"""Every start-up mistake a person can make ends in one line on stderr and an exit status by kind.

Each case runs the real ``syncline`` command line in a subprocess: 2 for bad usage or input,
3 for the environment (port, host, data directory, PostgreSQL, Redis, a missing driver),
4 for corrupt data. The "listening" banner never appears when the relay did not start.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.services import create_schema, drop_schema, fresh_schema_name, postgres_dsn

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
"""A log line of the relay (plain text), which may come before the failure's one line."""
BLOCK_AND_RUN = (
    "import sys; [sys.modules.__setitem__(m, None) for m in sys.argv[1].split(',') if m]; "
    "from syncline.app.cli import main; raise SystemExit(main(sys.argv[2:]))"
)
"""Runs the command line with the modules named in argv[1] made unimportable (as if not installed)."""


def _run(*args: str, blocked: str = "", cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_AND_RUN, blocked, *args], capture_output=True, text=True,
        timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL,
    )


def _one_line_failure(done: subprocess.CompletedProcess[str], status: int, command: str, *fragments: str) -> str:
    """Assert ``done`` failed with ``status`` and one line (log lines aside) naming ``fragments``."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == status, (done.returncode, done.stderr)
    assert "listening" not in done.stdout, done.stdout
    lines = [line for line in done.stderr.splitlines() if not LOG_LINE.match(line)]
    assert len(lines) == 1, done.stderr
    assert done.stderr.splitlines()[-1] == lines[0]  # the message is the last thing said
    assert lines[0].startswith(f"syncline {command}"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_says_so_and_how_to_pick_another(tmp_path: Path, listening_port: int) -> None:
    done = _run("serve", "--port", str(listening_port), "--data-dir", str(tmp_path / "data"))
    _one_line_failure(done, 3, "serve", f"127.0.0.1:{listening_port}", "in use", "--port")


def test_an_unknown_host_says_so(tmp_path: Path) -> None:
    done = _run("serve", "--host", "no-such-host.invalid", "--port", "0", "--data-dir", str(tmp_path / "data"))
    _one_line_failure(done, 3, "serve", "no-such-host.invalid", "unknown host", "--host")


def test_a_host_that_is_not_this_machine_says_so(tmp_path: Path) -> None:
    done = _run("serve", "--host", "192.0.2.1", "--port", "0", "--data-dir", str(tmp_path / "data"))
    _one_line_failure(done, 3, "serve", "192.0.2.1", "not one of this machine's")


def test_a_data_dir_that_is_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file")
    done = _run("serve", "--port", "0", "--data-dir", str(tmp_path / "data"))
    _one_line_failure(done, 3, "serve", "is not a directory", "--data-dir")


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot write in: mode 0555, and immutable when running as root
    (root ignores modes; ``chattr +i`` binds it too)."""
    path = tmp_path / "readonly"
    path.mkdir()
    path.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"running as root and chattr +i is not available here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


@pytest.mark.parametrize("inside", [False, True], ids=["existing", "to-create"])
def test_an_unwritable_data_dir_says_so(readonly_dir: Path, inside: bool) -> None:
    data_dir = readonly_dir / "data" if inside else readonly_dir
    done = _run("serve", "--port", "0", "--data-dir", str(data_dir))
    _one_line_failure(done, 3, "serve", str(data_dir), "pass a --data-dir this user can write")
    token = _run("token", "--data-dir", str(data_dir), "--tenant", "acme", "--doc", "acme/*")
    _one_line_failure(token, 3, "token", str(data_dir))


def test_a_corrupt_store_says_so_without_printing_the_banner(tmp_path: Path) -> None:
    (tmp_path / "syncline.sqlite3").write_bytes(b"this is no SQLite database " * 400)
    done = _run("serve", "--port", "0", "--data-dir", str(tmp_path))
    _one_line_failure(done, 4, "serve", "syncline.sqlite3", "not a database", "move the file aside")
    assert done.stdout == ""


@pytest.mark.parametrize(("content", "fragment"), [
    ("{not json", "not JSON"),
    ('{"currency": "EUR", "prices": {"tee": -5}}', "tee"),
])
def test_a_bad_catalog_file_says_what_is_wrong(tmp_path: Path, content: str, fragment: str) -> None:
    catalog = tmp_path / "prices.json"
    catalog.write_text(content)
    done = _run("catalog", "load", str(catalog), "--tenant", "acme", "--data-dir", str(tmp_path / "data"))
    _one_line_failure(done, 2, "catalog", fragment)


def test_a_missing_catalog_file_says_so(tmp_path: Path) -> None:
    done = _run("catalog", "load", str(tmp_path / "nowhere.json"), "--tenant", "acme",
                "--data-dir", str(tmp_path / "data"))
    _one_line_failure(done, 2, "catalog", "nowhere.json")


@pytest.mark.parametrize(("args", "fragment"), [
    (["serve", "--port", "many"], "--port"),
    (["serve", "--port", "70000"], "port"),
    (["serve", "--no-such-flag"], "--no-such-flag"),
    (["serve", "--secret", "short"], "secret"),
    (["token", "--tenant", "acme", "--doc", "acme/*"], "--data-dir"),
    (["token", "--secret", "s" * 40, "--tenant", "acme"], "--doc"),
    (["token", "--secret", "s" * 40, "--tenant", "acme", "--doc", "other/*"], "docs[0]"),
    (["token", "--secret", "s" * 40, "--tenant", "acme", "--doc", "acme/*", "--ttl", "-1"], "--ttl"),
    (["client", "cart", "acme/c-1", "add"], "sku"),
])
def test_bad_flags_say_which_one_in_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    done = _run(*args, "--data-dir", str(tmp_path / "data")) if args[0] == "serve" else _run(*args, cwd=tmp_path)
    command = args[0]
    _one_line_failure(done, 2, command, fragment)


def test_an_unreachable_postgresql_says_so_without_printing_the_banner(tmp_path: Path) -> None:
    done = _run("serve", "--port", "0", "--data-dir", str(tmp_path), "--store", "postgresql://127.0.0.1:1/x")
    _one_line_failure(done, 3, "serve", "postgresql://127.0.0.1:1/x", "Connection refused", "--store")


def test_an_unreachable_redis_says_so_without_printing_the_banner(tmp_path: Path) -> None:
    dsn, schema = postgres_dsn(), fresh_schema_name()
    create_schema(dsn, schema)  # a schema of its own: other tests' relays migrate the shared one
    try:
        done = _run("serve", "--port", "0", "--data-dir", str(tmp_path), "--store", f"{dsn}?search_path={schema}",
                    "--fanout", "redis://127.0.0.1:1")
    finally:
        drop_schema(dsn, schema)
    _one_line_failure(done, 3, "serve", "fan-out unavailable", "--fanout")


@pytest.mark.parametrize(("flags", "blocked", "fragment"), [
    (["--store", "postgresql://127.0.0.1:1/x"], "asyncpg", "--store postgresql://"),
    (["--store", "postgresql://127.0.0.1:1/x", "--fanout", "redis://127.0.0.1:1"], "redis", "--fanout redis://"),
])
def test_a_cluster_setting_without_its_driver_names_the_extra(
    tmp_path: Path, flags: list[str], blocked: str, fragment: str
) -> None:
    done = _run("serve", "--port", "0", "--data-dir", str(tmp_path), *flags, blocked=blocked)
    _one_line_failure(done, 3, "serve", fragment, "pip install 'syncline[cluster]'")


def test_catalog_on_postgresql_without_its_driver_names_the_extra(tmp_path: Path) -> None:
    done = _run("catalog", "show", "--tenant", "acme", "--store", "postgresql://127.0.0.1:1/x", blocked="asyncpg")
    _one_line_failure(done, 3, "catalog", "pip install 'syncline[cluster]'")


def test_a_single_node_relay_runs_without_the_cluster_and_benchmark_packages(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", BLOCK_AND_RUN, "asyncpg,redis,pycrdt_websocket,pycrdt.store,sqlite_anyio",
         "serve", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Syncline relay listening on http://"), first
    finally:
        process.terminate()
        _, err = process.communicate(timeout=15)
    assert process.returncode == 0 and "Traceback" not in err, err


def test_version_prints_the_installed_version() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert re.fullmatch(r"syncline \d+\.\d+\.\d+\S*\n", done.stdout), done.stdout
