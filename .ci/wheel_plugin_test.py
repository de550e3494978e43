"""Run by .ci/run against the installed wheel: the pytest plugin as a user meets it."""

import pytest

from aioflags import Context


@pytest.mark.asyncio
@pytest.mark.aioflags({"new-checkout": True})
async def test_the_fixture_client_serves_the_marked_flags(aioflags_client):
    """The marker's values reach the fixture client."""
    user = Context.create("u1")
    assert await aioflags_client.bool_variation("new-checkout", user, False) is True
