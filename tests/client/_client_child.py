"""A sync client in its own process, for tests that SIGKILL it.

``python -m tests.client._client_child DATA_DIR URL TOKEN DOC MODE [COUNT]``

* ``edit``: add one unit of ``sku-child`` COUNT times, printing ``edited I`` after each
  edit call has returned (so the edit is on disk), then ``done`` and wait to be killed.
* ``lead``: open the document and print ``leading`` once this client is its leader, then
  wait to be killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from tests.client.support import client


async def main(data_dir: str, url: str, token: str, name: str, mode: str, count: int) -> None:
    async with client(Path(data_dir), [url], token) as c:
        replica = await c.open(name)
        if mode == "edit":
            cart = await c.cart(name)
            for i in range(1, count + 1):
                cart.add_item("sku-child", 1)
                print(f"edited {i}", flush=True)
                await anyio.sleep(0)
            print("done", flush=True)
        else:
            await replica.wait_until(lambda: replica.leader, 10)
            print("leading", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    data_dir, url, token, name, mode, *rest = sys.argv[1:]
    anyio.run(main, data_dir, url, token, name, mode, int(rest[0]) if rest else 0)
