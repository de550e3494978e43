"""When a reload may apply a flag file: the one rule of ``DataSystem.file`` and ``serve``.

Editors and scripts often save in pieces (truncate, then write in several
flushes): a reload that reads between two pieces sees an empty or a
truncated file, and an empty or truncated YAML document is still valid YAML.
So a change is applied only once the files have settled:

- **Settled.** Their stamp (modification time and size) is unchanged across
  a short settle interval, and a second read gives the same bytes; otherwise
  the watcher waits and looks again, at most :data:`SETTLE_TRIES` times, then
  reports the files as still changing (the last good data stays).
- **Not empty.** A file with nothing in it is an error (the last good data
  stays), as any file that does not load.
- **No mass drop at once.** A load that drops more than half of the flags,
  and more than :data:`MASS_DROP_FEW`, is held (a WARNING on the
  ``aioflags.datasource`` logger) and applied only if the next check reads
  the same bytes again.

Versions are not this module's business: the file source and ``serve``
version by content, so unchanged flags keep theirs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio

from aioflags._core._threads import sdk_limiter
from aioflags._datasystem._sources._files import (
    FlagFileError,
    parse_flag_files,
    read_flag_file,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable
    from pathlib import Path

    from aioflags._core._json import JSONObject

__all__ = [
    "MASS_DROP_FEW",
    "SETTLE",
    "SETTLE_TRIES",
    "Failed",
    "FlagFileWatcher",
    "Held",
    "Loaded",
    "stamp",
]

logger = logging.getLogger("aioflags.datasource")

#: Seconds a file's stamp and bytes must stay the same before a change is applied.
SETTLE: Final = 0.1
#: Settle intervals to wait for a file that keeps changing before reporting it.
SETTLE_TRIES: Final = 20
#: A reload may drop this many flags at once (or up to half of them) unheld.
MASS_DROP_FEW: Final = 3

Stamp = tuple[tuple[int, int] | None, ...]
Contents = tuple[bytes | str, ...]


def _stamp_one(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def stamp(paths: tuple[Path, ...]) -> Stamp:
    """Modification time and size of each file (None if missing): what "changed" means."""
    return tuple(_stamp_one(p) for p in paths)


def _snapshot(paths: tuple[Path, ...]) -> tuple[Stamp, Contents]:
    """The files' stamp, then their bytes (or why each cannot be read)."""
    return stamp(paths), tuple(read_flag_file(p) for p in paths)


@dataclass(frozen=True, slots=True)
class Loaded:
    """The files settled and loaded: apply this data."""

    flags: dict[str, JSONObject]
    segments: dict[str, JSONObject]


@dataclass(frozen=True, slots=True)
class Failed:
    """The files do not load (or never settle): keep the last good data."""

    message: str


@dataclass(frozen=True, slots=True)
class Held:
    """The files load but drop most flags: held until the next check agrees."""

    message: str


class FlagFileWatcher:
    """Decides, check by check, whether (and what) a reload of ``paths`` applies.

    ``sleep`` waits the settle interval (the client's clock, so that a
    ``FakeClock`` drives it in tests).
    """

    __slots__ = ("_held", "_keys", "_paths", "_seen", "_settle", "_sleep", "_tries")

    def __init__(
        self,
        paths: tuple[Path, ...],
        sleep: Callable[[float], Awaitable[None]],
        *,
        settle: float = SETTLE,
        tries: int = SETTLE_TRIES,
    ) -> None:
        self._paths = paths
        self._sleep = sleep
        self._settle = settle
        self._tries = tries
        self._seen: Stamp | None = None
        #: The flag keys of the data last applied (None before any).
        self._keys: frozenset[str] | None = None
        #: The bytes of a load held for dropping most flags.
        self._held: Contents | None = None

    def loaded(self, flags: Iterable[str]) -> None:
        """Data read by other means was applied (``serve``'s first load): its flag keys."""
        self._seen = stamp(self._paths)
        self._keys = frozenset(flags)

    async def check(self, *, first: bool = False) -> Loaded | Failed | Held | None:
        """Look at the files once; None if there is nothing new to apply.

        ``first`` (the first load, nothing served yet): a file that reads
        the same twice in a row is taken at once, without the settle wait.
        """
        now = await anyio.to_thread.run_sync(stamp, self._paths, limiter=sdk_limiter())
        if now == self._seen and self._held is None:
            return None
        settled = await self._settled(quick=first)
        if settled is None:
            self._seen = None  # look again at the next check
            return Failed(
                f"{', '.join(map(str, self._paths))}: still being written: it changed "
                f"in each of {self._tries} checks {self._settle:g} s apart "
                "(the last good data is kept; it is applied once it stops changing)"
            )
        self._seen, contents = settled
        try:
            flags, segments = parse_flag_files(
                list(zip(self._paths, contents, strict=True)), allow_empty=False
            )
        except FlagFileError as exc:
            self._held = None
            return Failed(str(exc))
        if self._keys is not None:
            dropped = self._keys - flags.keys()
            if (
                len(dropped) > MASS_DROP_FEW
                and 2 * len(dropped) > len(self._keys)
                and self._held != contents
            ):
                self._held = contents
                message = (
                    f"{', '.join(map(str, self._paths))}: not reloaded yet: the save "
                    f"drops {len(dropped)} of {len(self._keys)} flags "
                    f"(e.g. {', '.join(sorted(dropped)[:3])}); it is applied if the "
                    "next check reads it the same (a save still being written "
                    "changes again)"
                )
                logger.warning("%s", message)
                return Held(message)
        self._held = None
        self._keys = frozenset(flags)
        return Loaded(flags, segments)

    async def _settled(self, *, quick: bool) -> tuple[Stamp, Contents] | None:
        """The files' stamp and bytes once two reads agree, or None if they never do."""
        run = anyio.to_thread.run_sync
        last = await run(_snapshot, self._paths, limiter=sdk_limiter())
        for i in range(self._tries):
            if not (quick and i == 0):
                await self._sleep(self._settle)
            now = await run(_snapshot, self._paths, limiter=sdk_limiter())
            if now == last:
                return now
            last = now
        return None
