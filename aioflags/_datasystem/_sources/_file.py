"""The file source: flags from local files, optionally reloaded when they change."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

import anyio

from aioflags._core._threads import sdk_limiter
from aioflags._datasystem._datatypes import (
    Change,
    ChangeKind,
    ChangeSet,
    ErrorInfo,
    ErrorKind,
    IntentCode,
    ObjectKind,
    SourceState,
    Update,
)
from aioflags._datasystem._sources._files import FlagFileError, load_flag_files
from aioflags._datasystem._sources._versions import ContentVersions

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable

    from aioflags._core._json import JSONObject
    from aioflags._datasystem._context import SourceContext

__all__ = ["file_synchronizer"]

_NOT_WATCHED: Final = (
    "without reload=True, DataSystem.file() reads its files once: fix them "
    "and start a new client (or pass reload=True to wait for them)"
)
_WATCHED: Final = "watching for edits: the client becomes READY once the files load"


def _stamp_one(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _stamp(paths: tuple[Path, ...]) -> tuple[tuple[int, int] | None, ...]:
    """Modification time and size of each file (None if missing): what "changed" means."""
    return tuple(_stamp_one(p) for p in paths)


def _puts(kind: ObjectKind, items: dict[str, JSONObject]) -> list[Change]:
    return [
        Change(action=ChangeKind.PUT, kind=kind, key=k, version=v["version"], obj=v)
        for k, v in items.items()
    ]


def file_synchronizer(
    *paths: str | os.PathLike[str], reload: bool = False, interval: float = 1.0
) -> Callable[[SourceContext], AsyncGenerator[Update, None]]:
    """Flags from files (JSON or YAML); with ``reload``, checked every ``interval`` seconds.

    Files that cannot be loaded at start fail at once: without ``reload``
    the source reports OFF with a fatal error (nothing will read them again),
    so the client is FATAL; with ``reload`` it reports an error that needs
    action (the client is ERROR at once) and keeps watching. After data has
    been loaded, a bad edit is an interruption: the last good data stays.

    Each load is versioned by content (:mod:`aioflags._datasystem._sources._versions`), so an edit
    is announced for exactly the flags it changes, whether or not it bumps
    their ``version``. The versions outlive a restart of the source.
    """
    files = tuple(Path(p) for p in paths)
    versions = ContentVersions()

    async def synchronizer(ctx: SourceContext) -> AsyncGenerator[Update, None]:
        seen: tuple[tuple[int, int] | None, ...] | None = None
        loaded = False
        while True:
            stamp = await anyio.to_thread.run_sync(_stamp, files, limiter=sdk_limiter())
            if stamp != seen:
                seen = stamp
                try:
                    flags, segments = await anyio.to_thread.run_sync(
                        load_flag_files, *files, limiter=sdk_limiter()
                    )
                except FlagFileError as exc:
                    if not reload:
                        # Nothing will read the files again: fail now, for good.
                        yield Update(
                            state=SourceState.OFF,
                            error=ErrorInfo(
                                kind=ErrorKind.INVALID_DATA,
                                message=f"{exc}; {_NOT_WATCHED}",
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
                            message=f"{exc}; {_WATCHED}" if first else str(exc),
                            time=ctx.clock.now(),
                            action_required=first,
                        ),
                    )
                else:
                    loaded = True
                    changes = [
                        *_puts(ObjectKind.FLAG, versions.stamp("flag", flags)),
                        *_puts(ObjectKind.SEGMENT, versions.stamp("segment", segments)),
                    ]
                    yield Update(
                        state=SourceState.VALID,
                        change_set=ChangeSet(
                            intent=IntentCode.TRANSFER_FULL, changes=tuple(changes)
                        ),
                    )
            if not reload:
                await anyio.sleep_forever()
            await ctx.clock.sleep(interval)

    return synchronizer
