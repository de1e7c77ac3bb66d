from __future__ import annotations

from tests.server.conftest import relay_factory as relay_factory  # noqa: F401 - the fixture, shared
