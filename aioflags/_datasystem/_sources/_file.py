"""The file source: flags from local files, optionally reloaded when they change."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

from aioflags._datasystem._datatypes import (
    ErrorInfo,
    ErrorKind,
    ObjectKind,
    SourceState,
    Update,
    full_transfer,
    puts,
)
from aioflags._datasystem._sources._cause import cause_of
from aioflags._datasystem._sources._versions import ContentVersions
from aioflags._datasystem._sources._watch import Failed, FlagFileWatcher, Loaded

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncGenerator, Callable

    from aioflags._datasystem._context import SourceContext

__all__ = ["file_synchronizer"]

_NOT_WATCHED: Final = (
    "without reload=True, DataSystem.file() reads its files once: fix them "
    "and start a new client (or pass reload=True to wait for them)"
)
_WATCHED: Final = "watching for edits: the client becomes READY once the files load"


def file_synchronizer(
    *paths: str | os.PathLike[str],
    reload: bool = False,
    interval: float = 1.0,
    format: str | None = None,
    fractional: int = 3,
) -> Callable[[SourceContext], AsyncGenerator[Update, None]]:
    """Flags from files (JSON or YAML); with ``reload``, checked every ``interval`` seconds.

    Files that cannot be loaded at start fail at once: without ``reload``
    the source reports OFF with a fatal error (nothing will read them again),
    so the client is FATAL; with ``reload`` it reports an error that needs
    action (the client is ERROR at once) and keeps watching. After data has
    been loaded, a bad edit is an interruption: the last good data stays.
    When an edit applies (settled, not empty, quiet after a sign of a save
    in progress) is
    :class:`~aioflags._datasystem._sources._watch.FlagFileWatcher`'s rule,
    shared with ``aioflags serve``.

    ``format`` and ``fractional``: how the files are read
    (:func:`~aioflags._datasystem._sources._files.parse_flag_files`).

    Each load is versioned by content (:mod:`aioflags._datasystem._sources._versions`), so an edit
    is announced for exactly the flags it changes, whether or not it bumps
    their ``version``. The versions outlive a restart of the source.
    """
    files = tuple(Path(p) for p in paths)
    versions = ContentVersions()

    async def synchronizer(ctx: SourceContext) -> AsyncGenerator[Update, None]:
        watcher = FlagFileWatcher(
            files, ctx.clock, format=format, fractional=fractional
        )
        loaded = False
        first_check = True
        while True:
            outcome = await watcher.check(first=first_check)
            first_check = False
            if isinstance(outcome, Loaded):
                try:
                    flags = versions.stamp("flag", outcome.flags)
                    segments = versions.stamp("segment", outcome.segments)
                except Exception as exc:  # noqa: BLE001 - a document's fault refuses that load alone
                    names = ", ".join(map(str, files))
                    outcome = Failed(f"{names}: cannot be read: {cause_of(exc)}")
            if isinstance(outcome, Failed):
                if not reload:
                    # Nothing will read the files again: fail now, for good.
                    yield Update(
                        state=SourceState.OFF,
                        error=ErrorInfo(
                            kind=ErrorKind.INVALID_DATA,
                            message=f"{outcome.message}; {_NOT_WATCHED}",
                            time=ctx.clock.now(),
                            fatal=True,
                        ),
                    )
                    return
                # Keep the last good data (if any); say clearly what is wrong.
                first = not loaded
                yield Update(
                    state=SourceState.INTERRUPTED,
                    error=ErrorInfo(
                        kind=ErrorKind.INVALID_DATA,
                        message=f"{outcome.message}; {_WATCHED}"
                        if first
                        else outcome.message,
                        time=ctx.clock.now(),
                        action_required=first,
                    ),
                )
            elif isinstance(outcome, Loaded):
                loaded = True
                yield Update(
                    state=SourceState.VALID,
                    change_set=full_transfer(
                        puts(ObjectKind.FLAG, flags),
                        puts(ObjectKind.SEGMENT, segments),
                    ),
                )
            # Held (a save maybe still in progress): the last good data stays
            # until the files have been quiet; a mass drop, the watcher logged.
            if not reload:
                await anyio.sleep_forever()
            await ctx.clock.sleep(interval)

    return synchronizer
