"""Instructions per delivered update: the relay's work on the fan-out path, counted by callgrind.

Run from the repository root::

    python -m benchmarks.instructions                       # this checkout, about 2 minutes
    python -m benchmarks.instructions --quick               # one short run
    python -m benchmarks.instructions --other /tmp/old/.venv/bin/python --other-root /tmp/old

On a shared machine the CPU seconds of a fan-out run move by 10-20% from one run to the next
(other jobs, frequency), so a change that saves 5% cannot be seen in them. Instructions can:
``syncline serve`` runs under ``valgrind --tool=callgrind``; ``benchmarks/js/fanout.mjs``
(rooms x 5 Yjs clients, a few edits a second, so that the relay keeps up while valgrind
slows it some fifty times) drives it; callgrind's counters are zeroed when the clients start
editing and dumped when they are done, so start-up and connecting are left out. The result
is every instruction of the relay process (its event loop, the store's writer thread,
SQLite, pycrdt, the kernel calls' user-space side) divided by the updates delivered. Each
thread is counted apart (``--separate-threads=yes``), so the main thread's (the event loop's)
share is printed too, and so is each library's (``benchmarks/callgrind.py``): CPython, SQLite,
pycrdt, uvloop, libc.

``--other PYTHON --other-root DIR`` runs a second build the same way, interleaved with this
one (a ``git worktree`` of another commit with its own ``pip install -e``), and prints both.
The load is light and sent by a real client, so batching still varies a little from run to
run (a few percent); ``--runs`` repeats. Node's V8 cannot be compared this way (its code is
compiled at run time, and at this load mostly interpreted), so this is for comparing builds
of the relay, not the relay with the reference. Results are saved as JSON (default
``benchmarks/runs/instructions.json``; summary in ``benchmarks/results/instructions.json``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import callgrind, common
from harness.relay_process import RelayProcess

FANOUT_JS = common.ROOT / "benchmarks" / "js" / "fanout.mjs"
TENANT = "acme"


def count(python: str, root: Path, rooms: int, rate: float, duration: float) -> dict[str, Any]:
    """One run of the relay ``root`` (served by ``python``) under callgrind: its instructions per
    delivery, the main thread's (the event loop) among them, and every library's share."""
    with tempfile.TemporaryDirectory(prefix="syncline-instructions-") as work:
        out = Path(work) / "callgrind.out"
        relay = RelayProcess(
            Path(work) / "data", ["--rate-messages-per-second", "1000", "--rate-burst", "1000"], python=python,
            wrapper=["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}.%p"],
            startup_seconds=300,  # imports under valgrind take a while
        ).start()
        try:
            assert relay.process is not None
            result = _drive(relay.process.pid, relay.port, relay.token(TENANT, f"{TENANT}/*"), rooms, rate, duration)
        finally:
            relay.terminate(timeout=120)
            relay.stop()
        # One dump per thread that ran while the load did: the event loop, the store's writer, ...
        # (with --separate-threads=yes callgrind also leaves an empty file named for the process)
        files = [path for path in Path(work).glob("callgrind.out.*") if path.stat().st_size]
        dumps = [dump for dump in map(callgrind.read, files) if dump.trigger == "dump load"]
        main_thread = sum(dump.total for dump in dumps if dump.thread == 1)
        if not main_thread:
            raise RuntimeError(f"no callgrind dump of the load's main thread among {len(dumps)} dumps")
        objects: Counter[str] = sum((dump.objects for dump in dumps), Counter())
        instructions = sum(objects.values())
    delivered = max(1, result["delivered"])
    parts = callgrind.by_part(objects)
    return {"root": str(root), "instructions": instructions, "main_thread_instructions": main_thread,
            "delivered": result["delivered"], "expected": result["expected_deliveries"],
            "per_delivery": instructions / delivered, "main_thread_per_delivery": main_thread / delivered,
            "parts": {part: n / instructions for part, n in parts.most_common()}}


def _drive(pid: int, port: int, token: str, rooms: int, rate: float, duration: float) -> dict[str, Any]:
    args = ["node", str(FANOUT_JS), "--url", f"ws://127.0.0.1:{port}/v1/sync", "--token", token,
            "--rooms", str(rooms), "--clients", "5", "--rate", str(rate), "--duration", str(duration),
            "--drain", "30", "--prefix", f"{TENANT}/cart/r", "--deflate", "false", "--late-joiner", "false"]
    client = subprocess.Popen(args, cwd=common.ROOT, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] | None = None
    assert client.stdout is not None
    for line in client.stdout:
        event = json.loads(line)
        if event["event"] == "start":
            _control("--zero", pid)
        elif event["event"] == "done":
            _control("--dump=load", pid)
        elif event["event"] == "result":
            result = event
    client.wait(timeout=60)
    if result is None or not result.get("ok"):
        raise RuntimeError(f"fanout.mjs failed: {result}")
    return result


def _control(command: str, pid: int) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True, timeout=60)


def main(argv: Sequence[str] | None = None) -> None:
    parser = common.parser("instructions", __doc__, quick="one run of 4 rooms for 4 s")
    parser.add_argument("--rooms", type=int, default=8, help="rooms of 5 clients (default 8)")
    parser.add_argument("--rate", type=float, default=2.0, help="edits a second per client (default 2)")
    parser.add_argument("--seconds", type=float, default=8.0, help="editing time (default 8)")
    parser.add_argument("--runs", type=int, default=2, help="runs per build, interleaved (default 2)")
    parser.add_argument("--other", help="the Python of a second build to compare (its venv's python)")
    parser.add_argument("--other-root", type=Path, help="that build's checkout (default: this one)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind (with callgrind_control) is needed: apt-get install valgrind")
    rooms, seconds, runs = (4, 4.0, 1) if args.quick else (args.rooms, args.seconds, args.runs)
    builds = {"this": (sys.executable, common.ROOT)}
    if args.other:
        builds["other"] = (args.other, args.other_root or common.ROOT)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in builds}
    for i in range(runs):
        for name, (python, root) in builds.items():
            run = count(python, root, rooms, args.rate, seconds)
            results[name].append(run)
            common.log("instructions", f"{name} #{i + 1}: {run['per_delivery']:,.0f} instructions per delivery, "
                                       f"{run['main_thread_per_delivery']:,.0f} on the main thread "
                                       f"({run['delivered']:,}/{run['expected']:,} delivered)")
    rows = [(name, root, ", ".join(f"{r['per_delivery']:,.0f}" for r in results[name]),
             f"{min(r['per_delivery'] for r in results[name]):,.0f}",
             ", ".join(f"{r['main_thread_per_delivery']:,.0f}" for r in results[name]))
            for name, (_, root) in builds.items()]
    print(common.table(["build", "checkout", "instructions per delivery (each run)", "least",
                        "main thread (each run)"], rows))
    print()
    print(_parts_table(results))
    raw = {"machine": common.machine_info(node=True), "command": " ".join(["python -m benchmarks.instructions", *(argv or sys.argv[1:])]),
           "load": {"rooms": rooms, "clients_per_room": 5, "rate": args.rate, "seconds": seconds}, "runs": results}
    common.save("instructions", raw, args.out)


def _parts_table(results: dict[str, list[dict[str, Any]]]) -> str:
    """Each build's instructions by the library that ran them, as shares of its runs' sum."""
    names = list(results)
    shares: dict[str, dict[str, float]] = {}
    for name in names:
        runs = results[name]
        whole = sum(r["instructions"] for r in runs)
        for r in runs:
            for part, share in r["parts"].items():
                shares.setdefault(part, {}).setdefault(name, 0.0)
                shares[part][name] += share * r["instructions"] / whole
    order = sorted(shares, key=lambda part: -shares[part].get(names[0], 0.0))
    rows = [(part, *(f"{100 * shares[part].get(name, 0.0):.1f}%" for name in names)) for part in order]
    return common.table(["where the instructions run", *(f"{name} (share)" for name in names)], rows)


if __name__ == "__main__":
    main()
