"""Run ``syncline serve`` as a real subprocess on a loopback port, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from syncline.engine.tokens import issue_token

SECRET = "test-secret-" + "x" * 40
UNLIMITED_REST = ["--rest-burst", "1000000", "--rest-rate-per-second", "1000000",
                  "--rest-tenant-burst", "1000000", "--rest-tenant-rate-per-second", "1000000"]
"""REST rate limits no test or benchmark reaches by accident (a module's tests share one token);
tests of the limits pass their own flags, which come later and win."""
STARTUP_SECONDS = 20.0


@dataclass
class RelayProcess:
    data_dir: Path
    flags: list[str] = field(default_factory=list)
    port: int = 0
    process: subprocess.Popen[str] | None = None
    log_path: Path | None = None
    module: str = "syncline.app.cli"
    """The module run with ``python -m`` and ``serve ...`` (benchmarks run variants of the relay)."""
    python: str = sys.executable
    """The interpreter (another build's virtualenv, for benchmarks that compare builds)."""
    wrapper: list[str] = field(default_factory=list)
    """A command the interpreter runs under (``valgrind ...``); its process is the relay's."""
    startup_seconds: float = STARTUP_SECONDS

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> RelayProcess:
        """Start the relay (on the previous port after a restart) and wait for its banner."""
        self._close_pipe()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "relay.log"
        log: IO[str] = open(self.log_path, "a")  # noqa: SIM115 - owned by the child process
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [*self.wrapper, self.python, "-m", self.module, "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(self.data_dir), "--secret", SECRET, *UNLIMITED_REST, *self.flags],
            stdout=subprocess.PIPE, stderr=log, text=True, env=env,
        )
        log.close()
        assert self.process.stdout is not None
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"relay exited during startup:\n{self.log()}")
            if line.startswith("Syncline relay listening on http://"):
                self.port = int(line.split("http://", 1)[1].split()[0].rsplit(":", 1)[1])
                break
        else:
            raise RuntimeError("relay did not print its address in time")
        self._wait_ready(deadline)
        return self

    def _wait_ready(self, deadline: float) -> None:
        import httpx

        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.http_url}/readyz", timeout=2.0)
                # A cluster node is ready once degraded too; tests want its fan-out up as well.
                if response.status_code == 200 and response.json().get("fanout", "ok") == "ok":
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"relay never became ready:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; return the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def restart(self) -> RelayProcess:
        if self.process is not None and self.process.poll() is None:
            self.terminate()
        return self.start()

    def peak_rss(self) -> int:
        """The relay process's peak resident set size so far (VmHWM), in bytes."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(status.split("VmHWM:", 1)[1].split()[0]) * 1024

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            report = os.environ.get("SYNCLINE_PEAK_RSS_LOG")
            if report:  # a run that measures the relays' memory (docs/hardening.md)
                with open(report, "a") as out:
                    out.write(f"{self.data_dir.parent.name} {self.peak_rss()}\n")
            self.process.kill()
            self.process.wait(timeout=10)
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    # -- addresses and tokens ------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str, token: str | None = None) -> str:
        base = f"ws://127.0.0.1:{self.port}/v1/sync/{name}"
        return base if token is None else f"{base}?token={token}"

    def token(self, tenant: str, *patterns: str, read_only: bool = False, ttl: int | None = None) -> str:
        return issue_token(SECRET, tenant, list(patterns) or [f"{tenant}/*"], read_only=read_only, ttl_seconds=ttl)

    def url_for(self, name: str, *, read_only: bool = False) -> str:
        """A URL with a token for exactly this document."""
        return self.url(name, self.token(name.split("/", 1)[0], name, read_only=read_only))

    # -- looking at the store directly --------------------------------------------

    def stored_rows(self) -> list[tuple[str, bytes]]:
        """Every (doc, blob) in the store's log and snapshots, read with a separate connection."""
        path = self.data_dir / "syncline.sqlite3"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT doc, blob FROM updates ORDER BY seq").fetchall()
            rows += db.execute("SELECT doc, blob FROM snapshots ORDER BY doc").fetchall()
        return rows
