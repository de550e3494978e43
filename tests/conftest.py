"""Shared fixtures for aioflags' own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import sources
from tests.redis_server import RedisServer, executable


@pytest.fixture(autouse=True)
def _close_scripted_sources() -> Iterator[None]:
    yield
    while sources.OPEN:
        sources.OPEN.pop().close()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh redis-server on a free 127.0.0.1 port, stopped by PID afterwards."""
    server = RedisServer(executable(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
