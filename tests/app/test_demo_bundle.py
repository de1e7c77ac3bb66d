"""The committed storefront demo (``app/static/demo``) is what its sources build: rebuilt here and compared.

The bundle is committed because ``pip install`` must not need Node; this test keeps the two
from drifting. It runs the same build as ``npm run build`` (``adapters/js/demo/build.mjs``);
the demo's behaviour is proven in Chromium by ``adapters/js/test/browser/``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "adapters" / "js" / "demo" / "build.mjs"
COMMITTED = ROOT / "app" / "static" / "demo"


def _files(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file()}


def test_the_committed_demo_is_exactly_what_its_sources_build(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "Node is needed to build the demo (npm ci at the repository root)"
    out = tmp_path / "demo"
    done = subprocess.run([node, str(BUILDER), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    built, committed = _files(out), _files(COMMITTED)
    assert set(built) == {"index.html", "app.js", "app.css"}
    assert set(committed) == set(built), "app/static/demo holds other files than the build makes"
    stale = [name for name in built if built[name] != committed[name]]
    assert stale == [], f"rebuild the demo (node {BUILDER.relative_to(ROOT)}): {stale} differ"
