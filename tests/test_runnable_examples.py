"""The examples of README.md and docs/ marked ``<!-- runnable -->`` run as written against a real relay.

A marked block is the fenced code block right after the marker: ``sh``/``bash`` runs in bash
(``-e -o pipefail``), ``python`` in this interpreter, ``js`` in Node (the ``@syncline/client``
package built from adapters/js). Each runs in the directory where ``syncline serve`` runs
with its default data directory (``./syncline-data``), with ``TOKEN`` set to the relay's
development token (tenant ``demo``), or, for ``<!-- runnable tenant=T -->``, to a token of
tenant T made with ``syncline token --data-dir syncline-data``. The one liberty taken is the
port: the relay listens on a free one, which replaces ``8787`` in the example.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- runnable(?: tenant=(?P<tenant>[a-z0-9-]+))? -->\n```(?P<lang>\w+)\n(?P<code>.*?)^```$",
                    re.MULTILINE | re.DOTALL)
LANGUAGES = {"sh", "bash", "python", "js"}
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Example:
    path: Path
    line: int
    lang: str
    code: str
    tenant: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _examples() -> list[Example]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in MARKER.finditer(text):
            found.append(Example(path, text.count("\n", 0, match.start()) + 1, match["lang"], match["code"],
                                 match["tenant"]))
    return found


EXAMPLES = _examples()


def test_the_readme_and_the_client_docs_have_runnable_examples() -> None:
    marked = {example.path.name for example in EXAMPLES}
    assert {"README.md", "client.md"} <= marked, marked
    assert {example.lang for example in EXAMPLES} <= LANGUAGES
    for path in DOCS:  # a marker must sit right on top of a fenced block, or it checks nothing
        assert path.read_text().count("<!-- runnable") == sum(1 for e in EXAMPLES if e.path == path), path


@dataclass
class Relay:
    workdir: Path
    address: str
    token: str


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """``syncline serve`` as a user starts it, in a fresh directory, on a free port."""
    workdir = tmp_path_factory.mktemp("first-hour")
    process = subprocess.Popen([str(BIN / "syncline"), "serve", "--port", "0"], cwd=workdir, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env())
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(5)]
        address = banner[0].split("listening on http://", 1)[1].split()[0]
        assert banner[4].startswith("  export TOKEN="), banner
        yield Relay(workdir, address, banner[4].split("=", 1)[1].strip())
    finally:
        process.terminate()
        process.communicate(timeout=15)
    assert process.returncode == 0


@pytest.fixture(scope="module")
def js_client() -> Path:
    """The ``@syncline/client`` package's dist/, built from adapters/js (needs ``npm ci``)."""
    tsc = ROOT / "node_modules" / "typescript" / "bin" / "tsc"
    assert tsc.exists(), "run npm ci first (README: Run the tests)"
    subprocess.run(["node", str(tsc), "-p", str(ROOT / "adapters/js/tsconfig.dist.json")], check=True,
                   timeout=300)
    return ROOT / "node_modules"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCLINE_") and k != "TOKEN"}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra}


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_the_example_runs_as_written(example: Example, relay: Relay, request: pytest.FixtureRequest,
                                     tmp_path: Path) -> None:
    token = relay.token
    if example.tenant is not None:
        made = subprocess.run([str(BIN / "syncline"), "token", "--data-dir", "syncline-data", "--tenant",
                               example.tenant, "--doc", f"{example.tenant}/*"], cwd=relay.workdir,
                              capture_output=True, text=True, timeout=60, env=_env())
        assert made.returncode == 0 and made.stderr == "", made.stderr
        token = made.stdout.strip()
    code = re.sub(r"(127\.0\.0\.1|localhost):8787", relay.address, example.code)
    if example.lang in ("sh", "bash"):
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    elif example.lang == "python":
        script = tmp_path / "example.py"
        script.write_text(code)
        command = [sys.executable, str(script)]
    else:
        node_modules = request.getfixturevalue("js_client")
        (tmp_path / "node_modules").symlink_to(node_modules)  # resolves @syncline/client and ws
        script = tmp_path / "example.mjs"
        script.write_text(code)
        command = ["node", str(script)]
    done = subprocess.run(command, cwd=relay.workdir, capture_output=True, text=True, timeout=120,
                          env=_env(TOKEN=token))
    assert done.returncode == 0, f"{example.id} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr and "Error" not in done.stderr, done.stderr
