"""`syncline catalog`: loading and showing a tenant's prices, refusing bad files whole."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from syncline.adapters.rest.catalog import CatalogError, parse_csv, parse_json
from syncline.app.cli import main
from syncline.server.store import Price

def catalog(*args: str) -> subprocess.CompletedProcess[str]:
    """``syncline catalog ARGS`` run by the command line's ``main`` in this process: its exit
    status and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(["catalog", *args])
        except SystemExit as exc:  # argparse refusing the arguments
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["catalog", *args], code, out.getvalue(), err.getvalue())


def catalog_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m syncline.app.cli catalog ARGS`` as a real process."""
    return subprocess.run([sys.executable, "-m", "syncline.app.cli", "catalog", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_load_replaces_merge_keeps_and_show_lists(tmp_path: Path) -> None:
    catalog = catalog_process  # the command itself, end to end, once
    data = tmp_path / "data"
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"currency": "EUR", "prices": {"tee": 1299, "mug": {"unit_price": 450}}}))
    done = catalog("load", str(first), "--data-dir", str(data), "--tenant", "acme")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded 2 prices for acme"
    more = tmp_path / "more.csv"
    more.write_text("product,unit_price,currency\ncap,999,USD\n")
    assert catalog("load", str(more), "--data-dir", str(data), "--tenant", "acme", "--merge").returncode == 0
    shown = catalog("show", "--data-dir", str(data), "--tenant", "acme")
    assert shown.stdout.splitlines() == ["cap\t999\tUSD", "mug\t450\tEUR", "tee\t1299\tEUR"]
    assert catalog("load", str(more), "--data-dir", str(data), "--tenant", "acme").returncode == 0
    assert catalog("show", "--data-dir", str(data), "--tenant", "acme").stdout.splitlines() == ["cap\t999\tUSD"]
    assert catalog("show", "--data-dir", str(data), "--tenant", "globex").stdout == ""


@pytest.mark.parametrize("content, message", [
    ("{not json", "not JSON"),
    ('{"prices": {"tee": 12.5}, "currency": "EUR"}', "unit_price must be an integer"),
    ('{"prices": {"tee": -1}, "currency": "EUR"}', "unit_price must be an integer"),
    ('{"prices": {"tee": true}, "currency": "EUR"}', "unit_price must be an integer"),
    ('{"prices": {"tee": 100}}', "currency must be a three-letter"),
    ('{"prices": {"tee": 100}, "currency": "euro"}', "currency must be a three-letter"),
    ('{"prices": {"": 100}, "currency": "EUR"}', "product"),
    ('{"prices": [1, 2], "currency": "EUR"}', "expected"),
    ('{"prices": {}, "currency": "EUR", "extra": 1}', "expected"),
])
def test_a_bad_file_is_refused_whole_and_the_catalog_is_unchanged(tmp_path: Path, content: str,
                                                                   message: str) -> None:
    data = tmp_path / "data"
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"currency": "EUR", "prices": {"tee": 1299}}))
    assert catalog("load", str(good), "--data-dir", str(data), "--tenant", "acme").returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    done = catalog("load", str(bad), "--data-dir", str(data), "--tenant", "acme")
    assert done.returncode == 2
    assert message in done.stderr
    assert catalog("show", "--data-dir", str(data), "--tenant", "acme").stdout.splitlines() == ["tee\t1299\tEUR"]


def test_bad_tenant_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    done = catalog("load", str(tmp_path / "missing.json"), "--data-dir", str(tmp_path), "--tenant", "acme")
    assert done.returncode == 2 and "cannot read" in done.stderr
    done = catalog("show", "--data-dir", str(tmp_path), "--tenant", "../etc")
    assert done.returncode == 2 and "tenant" in done.stderr
    done = catalog("load", "--data-dir", str(tmp_path), "--tenant", "acme")
    assert done.returncode == 2 and "needs a FILE" in done.stderr


def test_parsers_agree_on_the_same_prices() -> None:
    assert parse_json('{"currency": "EUR", "prices": {"a": 1, "b": 2}}') == parse_csv(
        "product,unit_price\na,1\nb,2\n".replace("\n", ",EUR\n").replace("unit_price,EUR", "unit_price,currency")
    ) == {"a": Price(1, "EUR"), "b": Price(2, "EUR")}
    with pytest.raises(CatalogError, match="appears twice"):
        parse_csv("product,unit_price,currency\na,1,EUR\na,2,EUR\n")
    with pytest.raises(CatalogError, match="header"):
        parse_csv("sku,price\na,1\n")
