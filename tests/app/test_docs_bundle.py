"""The committed docs page (``app/static/docs``) is what its sources build: rebuilt here and compared.

The bundle is committed because ``pip install`` must not need Node; this test keeps the
two from drifting. It runs the same build as ``npm run build`` (``adapters/js/docs-page/build.mjs``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "adapters" / "js" / "docs-page" / "build.mjs"
COMMITTED = ROOT / "app" / "static" / "docs"


def _files(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file()}


def test_the_committed_docs_page_is_exactly_what_its_sources_build(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "Node is needed to build the docs page (npm ci at the repository root)"
    out = tmp_path / "docs"
    done = subprocess.run([node, str(BUILDER), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    built, committed = _files(out), _files(COMMITTED)
    assert set(built) == {"index.html", "docs.js", "docs.css"}
    assert set(committed) == set(built), "app/static/docs holds other files than the build makes"
    stale = [name for name in built if built[name] != committed[name]]
    assert stale == [], f"rebuild the docs page (node {BUILDER.relative_to(ROOT)}): {stale} differ"


def test_the_comparison_sees_a_change_to_the_sources(tmp_path: Path) -> None:
    # A copy of the page's sources elsewhere, with one string changed, builds the committed
    # docs.js with that string changed: nothing else depends on where the checkout is.
    node = shutil.which("node")
    assert node is not None
    copy = tmp_path / "js"
    shutil.copytree(ROOT / "adapters" / "js" / "docs-page", copy / "docs-page")
    for name in ("tsconfig.json", "package.json"):
        shutil.copy(ROOT / "adapters" / "js" / name, copy / name)
    (copy / "node_modules").symlink_to(ROOT / "node_modules")
    main = copy / "docs-page" / "src" / "main.ts"
    main.write_text(main.read_text().replace("could not be shown", "did not load"))
    out = tmp_path / "out"
    done = subprocess.run([node, str(copy / "docs-page" / "build.mjs"), str(out)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "index.html").read_bytes() == (COMMITTED / "index.html").read_bytes()
    committed = (COMMITTED / "docs.js").read_bytes()
    assert b"could not be shown" in committed
    assert (out / "docs.js").read_bytes() == committed.replace(b"could not be shown", b"did not load")
