"""The SDK's own worker threads: a capacity limiter of its own, not the app's.

anyio's default thread limiter (40 threads) is shared with the host
application: Starlette and FastAPI run every sync endpoint and dependency
under it. Work the SDK hands to a thread (parsing a large payload, compiling
``matches`` patterns, compressing events, reading flag files, loading a CA
bundle) runs under :func:`sdk_limiter` instead, so that an application whose
sync work fills its pool cannot hold up a flag change or the start-up, and
the SDK never takes a thread the application is waiting for.
"""

from __future__ import annotations

from typing import Final

import anyio
from anyio.lowlevel import RunVar

__all__ = ["SDK_THREADS", "sdk_limiter"]

#: How many worker threads the SDK's own work may use at once (per event loop).
SDK_THREADS: Final = 4

_limiter: RunVar[anyio.CapacityLimiter] = RunVar("aioflags_thread_limiter")


def sdk_limiter() -> anyio.CapacityLimiter:
    """The current event loop's limiter for the SDK's worker-thread work.

    Pass it as ``limiter=`` to every ``anyio.to_thread.run_sync`` the SDK
    makes. One per event loop (a :class:`~anyio.lowlevel.RunVar`, as anyio
    keeps its default one).
    """
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(SDK_THREADS)
        _limiter.set(limiter)
        return limiter
