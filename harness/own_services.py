"""PostgreSQL and Redis servers of a test's own, that the test can crash and restart for real.

The shared services of :mod:`harness.services` can only be cut off from a node (a TCP gate
in front of them); these are private processes on a free loopback port, started for one
test and always stopped after it, so a test may kill them:

- :func:`own_redis`: ``redis-server`` with no persistence (``--save '' --appendonly no``);
  :meth:`OwnRedis.kill` is a SIGKILL.
- :func:`own_postgres`: a fresh ``initdb`` cluster with trust auth and ``fsync=on``;
  :meth:`OwnPostgres.kill` is ``pg_ctl stop -m immediate``, which PostgreSQL documents as
  aborting every server process without a clean shutdown, leaving a crash recovery (WAL
  replay) to the next start. (A SIGKILL of the postmaster alone would leave its backends
  running, attached to its shared memory, and the next start would refuse.)

Both ``restart()`` on the same port (and, for PostgreSQL, the same data directory). As root,
PostgreSQL runs as the ``postgres`` system user (``initdb`` refuses root); its data directory
then lives in a directory of its own under the system temporary directory, since pytest's
``tmp_path`` sits below a directory only root may enter. Its log is in the test's directory
either way. Missing binaries skip the test (fail it under ``SYNCLINE_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.services import missing

REDIS_SERVER = Path("/usr/bin/redis-server")
POSTGRES_BIN_DIRS = "/usr/lib/postgresql/*/bin"
START_SECONDS = 30.0
"""Bound on a server's start (PostgreSQL's includes its crash recovery)."""
STOP_SECONDS = 15.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_refuses(port: int) -> bool:
    """Whether a connection to ``port`` on loopback is refused (nothing listens there)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def _spawn(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a server in a process group of its own, its output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd, start_new_session=True)


def _end(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL whatever is left of ``process``'s group and reap ``process``: no orphans."""
    if process is None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # its group: the server and every child it forked
    except ProcessLookupError:
        pass
    process.wait(timeout=STOP_SECONDS)
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline:  # children re-parented to init die a moment later
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    raise RuntimeError(f"processes of group {process.pid} outlived SIGKILL")


def _tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else ""


@dataclass
class OwnRedis:
    """A private ``redis-server`` on ``port``; its files (and log) in ``root``."""

    binary: Path
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.root / "redis.log"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = _spawn([str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(self.root)],
                              self.log_path, self.root)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{_tail(self.log_path)}")
            if self._pong():
                return
            time.sleep(0.01)
        raise RuntimeError(f"redis-server did not answer PING in {START_SECONDS:g} s:\n{_tail(self.log_path)}")

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server: no goodbye to its clients, the port closed."""
        _end(self.process)
        self.process = None
        if not port_refuses(self.port):
            raise RuntimeError(f"port {self.port} still answers after redis-server was killed")

    def restart(self) -> None:
        """Start again on the same port, killing it first if it runs (empty: nothing is persisted)."""
        self.kill()
        self.start()

    def stop(self) -> None:
        _end(self.process)
        self.process = None


@contextmanager
def own_redis(root: Path) -> Iterator[OwnRedis]:
    """A private Redis server, started, and stopped on exit whatever happened."""
    if not os.access(REDIS_SERVER, os.X_OK):
        missing("redis-server", f"no executable {REDIS_SERVER}")
    server = OwnRedis(REDIS_SERVER, root, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass
class OwnPostgres:
    """A private PostgreSQL cluster: data in ``home``/data, socket in ``home``, log ``log_path``."""

    bin_dir: Path
    home: Path
    log_path: Path
    port: int
    run_as: list[str] = field(default_factory=list)
    """The command prefix that runs PostgreSQL's programs as their user (empty: as we are)."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def _run(self, program: str, *args: str, timeout: float = 60.0) -> None:
        with open(self.log_path, "ab") as out:
            done = subprocess.run([*self.run_as, str(self.bin_dir / program), *args], check=False,
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.home,
                                  timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} exited with {done.returncode}:\n{_tail(self.log_path)}")

    def init(self) -> None:
        # --no-sync only for initdb's own files: the server runs with fsync=on, and a crash of
        # the server (not of the machine) leaves what initdb wrote in the page cache anyway.
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--locale=C", "--no-sync", "--no-instructions")

    def start(self) -> None:
        """Start the postmaster and wait until it accepts connections (after any crash recovery)."""
        self.process = _spawn(
            [*self.run_as, str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.home}",
             "-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "shared_buffers=32MB",
             "-c", "logging_collector=off"],
            self.log_path, self.home)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{_tail(self.log_path)}")
            ready = subprocess.run([str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                                    "-U", "postgres", "-t", "1"], stdin=subprocess.DEVNULL, check=False)
            if ready.returncode == 0:
                return
            time.sleep(0.02)
        raise RuntimeError(f"postgres did not accept connections in {START_SECONDS:g} s:\n{_tail(self.log_path)}")

    def kill(self) -> None:
        """Crash the server: ``pg_ctl stop -m immediate`` (every server process aborted, no
        checkpoint; the next start replays the WAL). Returns once no process of it is left and
        the port refuses connections."""
        if self.process is not None and self.process.poll() is None:
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w",
                      "-t", str(int(STOP_SECONDS)), timeout=STOP_SECONDS + 5)
        _end(self.process)
        self.process = None
        if not port_refuses(self.port):
            raise RuntimeError(f"port {self.port} still answers after PostgreSQL was stopped")

    def restart(self) -> None:
        """Start again on the same port and data directory, crashing it first if it runs (the
        start replays the WAL)."""
        self.kill()
        self.start()

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.kill()
        finally:
            _end(self.process)
            self.process = None


def _postgres_bin_dir() -> Path:
    """Where initdb, postgres, pg_ctl and pg_isready are: on PATH, else the newest packaged version."""
    def version(path: str) -> int:
        name = Path(path).parent.name
        return int(name) if name.isdigit() else 0

    candidates = sorted(glob.glob(POSTGRES_BIN_DIRS), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.insert(0, str(Path(on_path).parent))
    for candidate in candidates:
        if all(os.access(Path(candidate) / name, os.X_OK) for name in ("initdb", "postgres", "pg_ctl", "pg_isready")):
            return Path(candidate)
    missing("PostgreSQL server binaries", f"no initdb, postgres, pg_ctl and pg_isready on PATH or in {POSTGRES_BIN_DIRS}")


@contextmanager
def own_postgres(root: Path) -> Iterator[OwnPostgres]:
    """A private, freshly initialised PostgreSQL server, started, and stopped (its data
    removed if it lived outside ``root``) on exit whatever happened."""
    bin_dir = _postgres_bin_dir()
    root.mkdir(parents=True, exist_ok=True)
    private: Path | None = None
    run_as: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = None
        if runuser is None or user is None:
            missing("PostgreSQL as root", "initdb refuses root, and there is no runuser or no postgres user")
        run_as = [runuser, "-u", "postgres", "--"]
        private = home = Path(tempfile.mkdtemp(prefix="syncline-postgres-"))
        os.chown(home, user.pw_uid, user.pw_gid)
    else:
        home = root / "postgres"
        home.mkdir(mode=0o700)
    server = OwnPostgres(bin_dir, home, root / "postgres.log", free_port(), run_as)
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            if private is not None:
                shutil.rmtree(private, ignore_errors=True)
