"""The sync face of aioflags, for code that is not async.

::

    import aioflags
    import aioflags.blocking

    with aioflags.blocking.Client(aioflags.Config("sdk-key")) as client:
        enabled = client.bool_variation("new-checkout", context, False)

:class:`Client` is :class:`aioflags.Client` running on an event loop of its own
in one background thread (anyio's blocking portal), with the same evaluation
methods as plain sync methods: for Celery tasks, Django and Flask views,
scripts, and codebases that mix sync and async code. Evaluations read the
current immutable snapshot in the calling thread: they never wait for the
background thread and cost what ``client.snapshot().variation(...)`` costs.

See docs/sync.md. Added in version 0.1.0.
"""

from __future__ import annotations

from ._client._blocking import Client as Client

__all__ = ["Client"]

Client.__module__ = "aioflags.blocking"
