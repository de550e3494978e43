"""Shared fixtures for aioflags' own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import sources


@pytest.fixture(autouse=True)
def _close_scripted_sources() -> Iterator[None]:
    yield
    while sources.OPEN:
        sources.OPEN.pop().close()
