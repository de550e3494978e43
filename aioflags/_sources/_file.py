"""The file source: flags from local files, optionally reloaded when they change."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from aioflags._datatypes import (
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
from aioflags._files import FlagFileError, load_flag_files
from aioflags._versions import ContentVersions

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable

    from aioflags._datasystem import SourceContext
    from aioflags._json import JSONObject

__all__ = ["file_synchronizer"]


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

    Each load is versioned by content (:mod:`aioflags._versions`), so an edit
    is announced for exactly the flags it changes, whether or not it bumps
    their ``version``. The versions outlive a restart of the source.
    """
    files = tuple(Path(p) for p in paths)
    versions = ContentVersions()

    async def synchronizer(ctx: SourceContext) -> AsyncGenerator[Update, None]:
        seen: tuple[tuple[int, int] | None, ...] | None = None
        while True:
            stamp = await anyio.to_thread.run_sync(_stamp, files)
            if stamp != seen:
                seen = stamp
                try:
                    flags, segments = await anyio.to_thread.run_sync(
                        load_flag_files, *files
                    )
                except FlagFileError as exc:
                    # Keep the last good data; say clearly what is wrong.
                    yield Update(
                        state=SourceState.INTERRUPTED,
                        error=ErrorInfo(
                            kind=ErrorKind.INVALID_DATA,
                            message=str(exc),
                            time=ctx.clock.now(),
                        ),
                    )
                else:
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
