"""The redis-server fixture itself: a real server, by handshake; skips only outside CI."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.redis_server import RedisServer


@pytest.mark.asyncio
async def test_the_fixture_runs_a_private_server_that_can_be_restarted(
    redis_server: RedisServer,
) -> None:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert await client.ping() is True
        assert await client.config_get("save") == {"save": ""}
        assert await client.config_get("appendonly") == {"appendonly": "no"}
        await client.set("k", "v")
    finally:
        await client.aclose()
    port, first = redis_server.port, redis_server.pid
    redis_server.stop()
    redis_server.start()  # same port, empty again: no persistence
    assert redis_server.port == port and redis_server.pid not in (None, first)
    client = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert await client.get("k") is None
    finally:
        await client.aclose()


def test_missing_redis_server_skips_outside_ci_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests import redis_server

    monkeypatch.setattr(redis_server, "find", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("REDIS_TESTS_REQUIRED", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install redis-server"):
        redis_server.executable()
    monkeypatch.setenv("REDIS_TESTS_REQUIRED", "1")
    with pytest.raises(pytest.fail.Exception, match="required under CI"):
        redis_server.executable()


def test_whether_there_is_a_redis_server_is_decided_once_per_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One installed (or removed) while the tests run changes no test's answer."""
    from tests import redis_server

    first = redis_server.find()
    other = None if first else "/usr/bin/redis-server"
    monkeypatch.setattr("shutil.which", lambda *a, **k: other)
    assert redis_server.find() == first
