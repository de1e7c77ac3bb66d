"""The committed browser pages (``app/static/demo``, ``app/static/docs``) are what their sources
build: rebuilt here and compared.

The bundles are committed because ``pip install`` must not need Node; these tests keep them
from drifting. They run the same builds as ``npm run build`` (``adapters/js/*/build.mjs``); the
demo's behaviour is proven in Chromium by ``adapters/js/test/browser/``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = {
    # page: (the committed output, its builder, the files the build makes)
    "demo": (ROOT / "app" / "static" / "demo", ROOT / "adapters" / "js" / "demo" / "build.mjs",
             {"index.html", "app.js", "app.css"}),
    "docs": (ROOT / "app" / "static" / "docs", ROOT / "adapters" / "js" / "docs-page" / "build.mjs",
             {"index.html", "docs.js", "docs.css"}),
}


def _files(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_committed_page_is_exactly_what_its_sources_build(tmp_path: Path, page: str) -> None:
    committed_dir, builder, expected = PAGES[page]
    node = shutil.which("node")
    assert node is not None, f"Node is needed to build the {page} page (npm ci at the repository root)"
    out = tmp_path / page
    done = subprocess.run([node, str(builder), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    built, committed = _files(out), _files(committed_dir)
    assert set(built) == expected
    assert set(committed) == set(built), f"{committed_dir.relative_to(ROOT)} holds other files than the build makes"
    stale = [name for name in built if built[name] != committed[name]]
    assert stale == [], f"rebuild the {page} page (node {builder.relative_to(ROOT)}): {stale} differ"


def test_the_comparison_sees_a_change_to_the_sources(tmp_path: Path) -> None:
    # A copy of the page's sources elsewhere, with one string changed, builds the committed
    # docs.js with that string changed: nothing else depends on where the checkout is.
    node = shutil.which("node")
    assert node is not None
    copy = tmp_path / "js"
    shutil.copytree(ROOT / "adapters" / "js" / "docs-page", copy / "docs-page")
    for name in ("tsconfig.json", "package.json", "page-build.mjs"):
        shutil.copy(ROOT / "adapters" / "js" / name, copy / name)
    (copy / "node_modules").symlink_to(ROOT / "node_modules")
    main = copy / "docs-page" / "src" / "main.ts"
    main.write_text(main.read_text().replace("could not be shown", "did not load"))
    out = tmp_path / "out"
    done = subprocess.run([node, str(copy / "docs-page" / "build.mjs"), str(out)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "index.html").read_bytes() == (PAGES["docs"][0] / "index.html").read_bytes()
    committed = (PAGES["docs"][0] / "docs.js").read_bytes()
    assert b"could not be shown" in committed
    assert (out / "docs.js").read_bytes() == committed.replace(b"could not be shown", b"did not load")
