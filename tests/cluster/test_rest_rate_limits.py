"""REST rate limits hold across the nodes of a cluster: their buckets are in the shared Redis."""

from __future__ import annotations

import httpx
from syncline.engine.tokens import issue_token

from harness.relay_process import SECRET

from .conftest import Cluster


def test_two_nodes_on_one_redis_share_a_subjects_budget(cluster: Cluster) -> None:
    one, two = cluster.start(2, "--rest-burst", "6", "--rest-rate-per-second", "0.01")
    token = issue_token(SECRET, "acme", ["acme/*"], subject="alice")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=one.http_url, headers=headers, timeout=10) as a, \
            httpx.Client(base_url=two.http_url, headers=headers, timeout=10) as b:
        statuses = [client.get("/v1/tenants/acme/carts/c1").status_code for client in (a, b) * 4]
        assert statuses == [200] * 6 + [429] * 2
        refused = b.get("/v1/tenants/acme/carts/c1")
        assert refused.status_code == 429
        assert refused.json()["type"] == "https://syncline.dev/problems/rate-limited"
        assert int(refused.headers["Retry-After"]) >= 90  # one token at 0.01 a second
        # Another subject of the tenant still has its own budget, on either node.
        other = {"Authorization": f"Bearer {issue_token(SECRET, 'acme', ['acme/*'], subject='bob')}"}
        assert a.get("/v1/tenants/acme/carts/c1", headers=other).status_code == 200
        assert b.get("/v1/tenants/acme/carts/c1", headers=other).status_code == 200
