"""Real, unmodified Yjs clients (Node: yjs + y-websocket) against a real relay subprocess.

``js_peer(relay, name)`` runs tests/interop/js/peer.mjs as a child process and
talks to it in JSON lines; see that file for the commands and events.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from harness.relay_process import RelayProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_JS = Path(__file__).resolve().parent / "js" / "peer.mjs"
NODE_PACKAGES = ("yjs", "y-websocket", "ws")

CLEAN_CLOSE_CODES = {1000, 1001}
"""Close codes that are not an error: normal closure, and going away (a relay restart)."""

PEER_TIMEOUT_MS = 20_000
"""Hard limit on one Node peer's life, whatever the test does."""


@pytest.fixture(scope="session", autouse=True)
def node_toolchain() -> str:
    """The path of ``node``; fails (never skips) when Node or the pinned packages are missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "`node` is not on PATH: install Node.js 20+, then run `npm ci` at the repo root", pytrace=False
        )
    missing = [
        name for name in NODE_PACKAGES if not (REPO_ROOT / "node_modules" / name / "package.json").is_file()
    ]
    if missing:
        pytest.fail(
            f"node_modules lacks {', '.join(missing)}: run `npm ci` at the repo root ({REPO_ROOT})",
            pytrace=False,
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 18:
        pytest.fail(f"Node {version} is too old for y-websocket 3: install Node.js 20+", pytrace=False)
    return node


def relay_errors(relay: RelayProcess) -> list[str]:
    """The relay log's ERROR (and worse) lines and tracebacks."""
    bad = (" ERROR ", " CRITICAL ", "Traceback", '"level": "error"', '"level": "critical"')
    return [line for line in relay.log().splitlines() if any(marker in line for marker in bad)]


@dataclass
class JsPeer:
    """One Node process holding a Y.Doc and a WebsocketProvider connected to the relay."""

    process: Process
    label: str
    stderr_path: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    returncode: int | None = None
    _replies: dict[int, dict[str, Any]] = field(default_factory=dict)
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _seq: int = 0

    # -- talking to the peer -------------------------------------------------------

    async def request(self, cmd: str, *, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        self._seq += 1
        seq = self._seq
        assert self.process.stdin is not None
        await self.process.stdin.send((json.dumps({"seq": seq, "cmd": cmd, **fields}) + "\n").encode())
        reply: dict[str, Any] = await self._until(
            lambda: self._replies.pop(seq, None), timeout, f"a reply to {cmd!r}"
        )
        if "error" in reply:
            raise AssertionError(f"{self.label}: {cmd!r} failed in Node:\n{reply['error']}")
        return reply

    async def dump(self) -> dict[str, Any]:
        doc: dict[str, Any] = (await self.request("dump"))["doc"]
        return doc

    async def wait_doc(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Dump the document until ``predicate`` holds, re-checking whenever the peer reports anything."""
        doc: dict[str, Any] = await self._poll(self.dump, predicate, timeout, "document")
        return doc

    async def wait_awareness(
        self, predicate: Callable[[dict[int, Any]], bool], timeout: float = 10.0
    ) -> dict[int, Any]:
        """The provider's awareness states (client id -> state), once ``predicate`` holds."""

        async def states() -> dict[int, Any]:
            return {client: state for client, state in (await self.request("awareness"))["states"]}

        found: dict[int, Any] = await self._poll(states, predicate, timeout, "awareness")
        return found

    async def wait_event(self, name: str, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """The ``count``-th event called ``name``, waiting for it if need be."""

        def found() -> dict[str, Any] | None:
            matching = [event for event in self.events if event.get("event") == name]
            return matching[count - 1] if len(matching) >= count else None

        event: dict[str, Any] = await self._until(found, timeout, f"event {name!r} #{count}")
        return event

    def bad_closes(self) -> list[dict[str, Any]]:
        """Established connections closed with an error code, give-ups, crashes and timeouts.

        ``code: null`` means this peer closed the socket itself; a close that was not
        ``established`` is a failed connection attempt (the relay was down), not a close.
        """
        return [
            event
            for event in self.events
            if event.get("event") in ("closed", "fatal", "timeout")
            or (
                event.get("event") == "close"
                and event.get("established")
                and event.get("code") not in CLEAN_CLOSE_CODES | {None}
            )
        ]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    # -- lifecycle -------------------------------------------------------------------

    async def close(self, timeout: float = 5.0) -> int | None:
        """End stdin (the peer destroys its provider and exits 0); kill it if it does not."""
        if self.process.returncode is None:
            assert self.process.stdin is not None
            try:
                await self.process.stdin.aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
            with anyio.move_on_after(timeout):
                await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
        await self.process.aclose()
        self.returncode = self.process.returncode
        return self.returncode

    def kill(self) -> None:
        """SIGKILL: the socket drops with no close frame and no awareness goodbye."""
        self.process.kill()

    async def _read(self) -> None:
        assert self.process.stdout is not None
        stream = BufferedByteReceiveStream(self.process.stdout)
        try:
            while True:
                line = await stream.receive_until(b"\n", 64 * 1024 * 1024)
                message = json.loads(line)
                if "reply" in message:
                    self._replies[message["reply"]] = message
                else:
                    self.events.append(message)
                self._notify()
        except (
            anyio.IncompleteRead,
            anyio.EndOfStream,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
        ):
            pass
        finally:
            self.ended = True
            self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def _poll(
        self, fetch: Callable[[], Awaitable[Any]], predicate: Callable[[Any], bool], timeout: float, what: str
    ) -> Any:
        """``fetch()`` until ``predicate`` holds, fetching again after each event from the peer."""
        deadline = anyio.current_time() + timeout
        while True:
            seen = len(self.events)
            value = await fetch()
            if predicate(value):
                return value
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                raise AssertionError(f"{self.label}: {what} never matched within {timeout}s; last:\n{value}")
            with anyio.move_on_after(remaining):
                await self._until(partial(self._events_since, seen), remaining + 1, "any event")

    def _events_since(self, seen: int) -> bool | None:
        return len(self.events) > seen or None

    async def _until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        try:
            with anyio.fail_after(timeout):
                while True:
                    result = check()
                    if result is not None:
                        return result
                    if self.ended:
                        raise AssertionError(
                            f"{self.label} exited while waiting for {what}: {self.diagnostics()}"
                        )
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.label}: no {what} within {timeout}s: {self.diagnostics()}") from None

    def diagnostics(self) -> str:
        return f"\nevents: {self.events}\nstderr: {self.stderr()}"


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested groups of one, or the group itself."""
    while len(group.exceptions) == 1 and isinstance(group.exceptions[0], BaseExceptionGroup):
        group = group.exceptions[0]
    return group.exceptions[0] if len(group.exceptions) == 1 else group


JsPeerFactory = Callable[..., AbstractAsyncContextManager[JsPeer]]


@pytest.fixture
def js_peer(tmp_path: Path, node_toolchain: str) -> JsPeerFactory:
    """``async with js_peer(relay, name, roots={...}) as peer``: a synced Node Yjs client."""
    counter = iter(range(1, 1000))

    @asynccontextmanager
    async def start(
        relay: RelayProcess,
        name: str,
        *,
        roots: dict[str, str],
        label: str | None = None,
        synced: bool = True,
    ) -> AsyncIterator[JsPeer]:
        label = label or f"js{next(counter)}"
        config = {
            "server": f"ws://127.0.0.1:{relay.port}/v1/sync",
            "room": name,
            "token": relay.token(name.split("/", 1)[0], name),
            "roots": roots,
            "timeoutMs": PEER_TIMEOUT_MS,
        }
        stderr_path = tmp_path / f"{label}.stderr"
        with stderr_path.open("wb") as stderr:
            process = await anyio.open_process(
                [node_toolchain, str(PEER_JS), json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=REPO_ROOT,
            )
        peer = JsPeer(process, label, stderr_path)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(peer._read)
                try:
                    if synced:
                        await peer.wait_event("synced")
                    yield peer
                finally:
                    with anyio.CancelScope(shield=True):
                        await peer.close()
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _sole(group) from None  # the test's own failure, not a group of one

    return start
