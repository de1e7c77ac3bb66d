"""A price catalog for tests and benchmarks, loaded the way an operator loads one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CATALOG = {"currency": "EUR", "prices": {"tee": 1299, "mug": 450, "cap": 999, "sock": 300}}


def load_catalog(data_dir: Path, tenant: str, catalog: dict[str, object]) -> None:
    """Load ``catalog`` for ``tenant`` with the real ``syncline catalog load`` command."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"catalog-{tenant}.json"
    path.write_text(json.dumps(catalog))
    subprocess.run(
        [sys.executable, "-m", "syncline.server.cli", "catalog", "load", str(path),
         "--data-dir", str(data_dir), "--tenant", tenant],
        check=True, capture_output=True, timeout=60,
    )
