"""CPU pinning with ``taskset``: the server under test on one core, the load generator on another.

On a two-core machine an unpinned server and its load generator share both cores with each
other and with everything else, so CPU-bound figures and the knee of a saturation curve move
with the scheduler. Pinned, the server has one core to saturate and the client cannot steal it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Pinning:
    """CPU lists in ``taskset -c`` form (``"0"``, ``"2,3"``); None: not pinned."""

    server: str | None = None
    client: str | None = None

    def client_command(self, args: list[str]) -> list[str]:
        """``args`` run on the client's CPUs."""
        return ["taskset", "-c", self.client, *args] if self.client is not None else args

    def pin_server(self, pid: int) -> None:
        """Move every thread of process ``pid`` (and the threads it starts later) to the server's CPUs."""
        if self.server is not None:
            pin(pid, self.server)

    def describe(self) -> str:
        if self.server is None and self.client is None:
            return "not pinned"
        return f"server on CPU {self.server or 'any'}, load generator on CPU {self.client or 'any'} (taskset)"


NONE = Pinning()


def default_pinning() -> Pinning:
    """Server on the first allowed CPU and the load generator on the second, when there are two
    and ``taskset`` is installed; otherwise no pinning."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 or shutil.which("taskset") is None:
        return NONE
    return Pinning(server=str(allowed[0]), client=str(allowed[1]))


def pin(pid: int, cpus: str) -> None:
    """``taskset -a -p -c CPUS PID``: every thread of the process, as the threads it starts inherit it."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, stdout=subprocess.DEVNULL)


def affinity(pid: int) -> list[int]:
    """The CPUs process ``pid``'s main thread may run on."""
    return sorted(os.sched_getaffinity(pid))


def cpus_busy(cpus: str) -> float:
    """Busy CPU seconds so far of the CPUs in ``cpus`` (``taskset -c`` form), from /proc/stat."""
    wanted = set()
    for part in cpus.split(","):
        first, _, last = part.partition("-")
        wanted.update(range(int(first), int(last or first) + 1))
    busy = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in wanted:
                numbers = [int(v) for v in values[:8]]
                busy += sum(numbers) - numbers[3] - numbers[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")
