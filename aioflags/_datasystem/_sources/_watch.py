"""When a reload may apply a flag file: the one rule of ``DataSystem.file`` and ``serve``.

Editors and scripts often save in pieces (truncate, then write in several
flushes, sometimes with pauses between them): a reload that reads between
two pieces sees an empty or a truncated file, and an empty or truncated YAML
document is still valid YAML. So a change is applied only once the files
have settled:

- **Settled.** Their stamp (modification time and size) is unchanged across
  a short settle interval (:data:`SETTLE`), and a second read gives the same
  bytes; otherwise the watcher waits and looks again, at most
  :data:`SETTLE_TRIES` times, then reports the files as still changing (the
  last good data stays).
- **Not empty.** A file with nothing in it is an error (the last good data
  stays), as any file that does not load.
- **Quiet after a sign of a save in progress.** A load that drops any flag
  the data had, or one that follows a file with no bytes (a save truncated)
  or no file at all once one was served (deleted, to be written again), or
  a load that was held, is held until the files have stayed exactly as they are for
  :data:`QUIET` seconds from the check that first saw them: a truncated
  save drops the flags of its missing end, and the pieces that complete it
  come within that time.
  A load that drops more than half of the flags (and more than
  :data:`MASS_DROP_FEW`) says so at WARNING on the ``aioflags.datasource``
  logger, and ``serve`` shows it on the console; a smaller drop waits
  quietly. A save that leaves the files as they were last applied applies
  nothing, but clears a trouble reported since (they are applied again).

Whatever reading the files raises (not only a :class:`FlagFileError`: a
document nested past what the reader can follow, one too large for memory)
is that load refused, in one line naming the files: a reload never ends
the file source or ``serve`` (issue 94).

Versions are not this module's business: the file source and ``serve``
version by content, so unchanged flags keep theirs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio

from aioflags._core._logname import client_logger
from aioflags._core._threads import sdk_limiter
from aioflags._datasystem._sources._cause import cause_of
from aioflags._datasystem._sources._files import (
    FlagFileError,
    parse_flag_files,
    read_flag_file,
)

if TYPE_CHECKING:
    from pathlib import Path

    from aioflags._core._clock import Clock
    from aioflags._core._json import JSONObject

__all__ = [
    "MASS_DROP_FEW",
    "QUIET",
    "SETTLE",
    "SETTLE_TRIES",
    "Failed",
    "FlagFileWatcher",
    "Held",
    "Loaded",
    "stamp",
]

logger = client_logger("aioflags.datasource")

#: Seconds a file's stamp and bytes must stay the same before a change is applied.
SETTLE: Final = 0.1
#: Settle intervals to wait for a file that keeps changing before reporting it.
SETTLE_TRIES: Final = 20
#: Seconds a held load must stay exactly as it is before it is applied: longer
#: than the pauses between the pieces of a save (an editor's or a script's).
QUIET: Final = 2.0
#: A held load that drops more than this many flags, and more than half of
#: them, is said at WARNING (and on ``serve``'s console).
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


def _parsed(
    paths: tuple[Path, ...], contents: Contents, reading: dict[str, Any]
) -> tuple[dict[str, JSONObject], dict[str, JSONObject]]:
    """The files' ``(flags, segments)``, as a reload reads them.

    Raises:
        FlagFileError: they do not load, for whatever reason: what else
            reading them raised is said in one line naming them.
    """
    try:
        return parse_flag_files(
            list(zip(paths, contents, strict=True)), allow_empty=False, **reading
        )
    except FlagFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - a document's fault, whatever it is, refuses that load alone
        cause = cause_of(exc)
    raise FlagFileError(f"{', '.join(map(str, paths))}: cannot be read: {cause}")


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
    """The files load, but look like a save in progress: held until they stay so.

    ``warn``: it drops most flags, which is worth saying (the watcher
    logged it); otherwise the wait is quiet.
    """

    message: str
    warn: bool


class FlagFileWatcher:
    """Decides, check by check, whether (and what) a reload of ``paths`` applies.

    ``clock`` waits the settle interval and times a held load's quiet (the
    client's clock, so that a ``FakeClock`` drives it in tests).
    """

    __slots__ = (
        "_applied",
        "_held",
        "_held_since",
        "_keys",
        "_paths",
        "_reading",
        "_saving",
        "_seen",
        "_settle",
        "_tries",
        "_troubled",
        "clock",
    )

    def __init__(
        self,
        paths: tuple[Path, ...],
        clock: Clock,
        *,
        settle: float = SETTLE,
        tries: int = SETTLE_TRIES,
        format: str | None = None,
        fractional: int = 3,
    ) -> None:
        self._paths = paths
        #: How the files are read (parse_flag_files' format and fractional;
        #: flagd flags in their shared form: the data is written out whole).
        self._reading: dict[str, Any] = {
            "format": format,
            "fractional": fractional,
            "share": True,
        }
        #: Whose time the checks wait on (and a held load's quiet is timed by).
        self.clock: Clock = clock
        self._settle = settle
        self._tries = tries
        self._seen: Stamp | None = None
        #: The flag keys of the data last applied (None before any).
        self._keys: frozenset[str] | None = None
        #: The bytes last applied (None: not known).
        self._applied: Contents | None = None
        #: The bytes of a load held, and since when (the clock's time).
        self._held: Contents | None = None
        self._held_since = 0.0
        #: A save is in progress: a file was found truncated or missing, or
        #: a load was held, since the last one applied: the next must stay
        #: quiet too.
        self._saving = False
        #: The last check reported trouble (Failed, or a Held that warned):
        #: the files back as last applied are applied again, to clear it.
        self._troubled = False

    def load(self) -> Loaded:
        """The first load, read now, synchronously (``serve``'s, before it serves).

        Raises:
            FlagFileError: the files do not load, or are empty.
        """
        self._seen, contents = _snapshot(self._paths)
        flags, segments = _parsed(self._paths, contents, self._reading)
        return self._apply(contents, flags, segments)

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
            self._held = None
            self._saving = self._troubled = True
            return Failed(
                f"{', '.join(map(str, self._paths))}: still being written: it changed "
                f"in each of {self._tries} checks {self._settle:g} s apart "
                "(the last good data is kept; it is applied once it stops changing)"
            )
        self._seen, contents = settled
        same = contents == self._applied  # saved as it was, or back to it
        if same:
            self._held = None
            if not self._troubled:
                return None
        try:
            flags, segments = _parsed(self._paths, contents, self._reading)
        except FlagFileError as exc:
            self._held = None
            self._troubled = True
            # A file with no bytes (truncated), or none at all once one was
            # served (deleted, to be written again), is a save with its
            # pieces to come; a syntax error is as likely a typo, whose fix
            # should apply at once; a file not there at start, one to come.
            served = self._keys is not None
            self._saving = self._saving or any(
                (served and not isinstance(c, bytes)) or not c.strip() for c in contents
            )
            return Failed(str(exc))
        if same:  # applied again, to clear the trouble (a save in progress still is)
            return self._apply(contents, flags, segments, saving=self._saving)
        dropped = self._keys - flags.keys() if self._keys is not None else frozenset()
        if dropped or self._saving:
            held = self._held_for(contents, dropped)
            if held is not None:
                self._troubled = held.warn
                return held
        return self._apply(contents, flags, segments)

    def _apply(
        self,
        contents: Contents,
        flags: dict[str, JSONObject],
        segments: dict[str, JSONObject],
        *,
        saving: bool = False,
    ) -> Loaded:
        self._held = None
        self._troubled = False
        self._saving = saving
        self._keys = frozenset(flags)
        self._applied = contents
        return Loaded(flags, segments)

    def _held_for(self, contents: Contents, dropped: frozenset[str]) -> Held | None:
        """The hold of a load that may be a save in progress; None once it has been quiet."""
        now = self.clock.now()
        fresh = self._held != contents
        if fresh:
            self._held = contents
            self._held_since = now
            self._saving = True
        elif now - self._held_since >= QUIET:
            return None
        names = ", ".join(map(str, self._paths))
        keys = self._keys or frozenset()
        warn = len(dropped) > MASS_DROP_FEW and 2 * len(dropped) > len(keys)
        if warn:
            message = (
                f"{names}: not reloaded yet: the save drops {len(dropped)} of "
                f"{len(keys)} flags (e.g. {', '.join(sorted(dropped)[:3])}); it is "
                f"applied once the file has stayed as it is for {QUIET:g} s (a save "
                "still being written changes again)"
            )
            if fresh:  # said once per content held
                logger.warning("%s", message)
        else:
            message = (
                f"{names}: waiting for the save to stay as it is for {QUIET:g} s "
                "before applying it"
            )
        return Held(message, warn)

    async def _settled(self, *, quick: bool) -> tuple[Stamp, Contents] | None:
        """The files' stamp and bytes once two reads agree, or None if they never do."""
        run = anyio.to_thread.run_sync
        last = await run(_snapshot, self._paths, limiter=sdk_limiter())
        for i in range(self._tries):
            if not (quick and i == 0):
                await self.clock.sleep(self._settle)
            now = await run(_snapshot, self._paths, limiter=sdk_limiter())
            if now == last:
                return now
            last = now
        return None
