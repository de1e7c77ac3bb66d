"""Every Python example in docs/semantics.md runs, in order, as one script."""

from __future__ import annotations

import re
from pathlib import Path

SEMANTICS = Path(__file__).resolve().parents[2] / "docs" / "semantics.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_semantics_examples_hold() -> None:
    blocks = BLOCK.findall(SEMANTICS.read_text(encoding="utf-8"))
    assert len(blocks) >= 10, "the worked examples went missing from docs/semantics.md"
    namespace: dict[str, object] = {}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"{SEMANTICS.name} example {number}", "exec")
        exec(code, namespace)  # noqa: S102 - the documentation is the test
