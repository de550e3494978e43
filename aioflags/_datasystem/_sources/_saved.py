"""Saved state: start from the last good flag data on disk, before the network answers.

:class:`SavedState` is an initializer (run first: it reads the file in a
worker thread, and the client is READY from it when it is recent enough)
and says where the data system keeps the file: the supervisor hands every
change set applied from the network to a :class:`StateSaver`, which keeps a
mirror of the data set and writes it, at most once per ``interval``, in a
worker thread, atomically (a temporary file beside it, flushed to disk,
then renamed over it). Nothing of it runs on the evaluation path.

The file is an FDv2 poll body with three fields before its events:
``{"format": "aioflags-saved-state", "version": 1, "saved_at": <epoch ms>,
"events": [server-intent, put-object..., payload-transferred]}``. Each
``put-object`` is kept as the text it arrived in (nothing is serialised
again to save it), and the file is read back by ingest's own parser, a
slice at a time on the event loop. A file that is not that (truncated,
corrupt, another program's, too old) is skipped with one line saying why.
Only a file this SDK wrote is ever replaced: anything else at the path
(another program's file, an empty one, a link, a folder) is left as it is,
and that is said once.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

import anyio
import anyio.to_thread

from aioflags._core._clock import wall_ms
from aioflags._core._exceptions import ConfigurationError, ProtocolError
from aioflags._core._frozen import Frozen, set_field
from aioflags._core._logname import client_logger
from aioflags._datasystem._datatypes import (
    Basis,
    ChangeSet,
    IntentCode,
)
from aioflags._datasystem._mirror import EventMirror
from aioflags._datasystem._payloads import parse_fdv2_poll_text

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable

    from aioflags._core._clock import Clock
    from aioflags._core._settings import Settings
    from aioflags._datasystem._context import SourceContext

__all__ = ["FORMAT", "Preload", "SavedState", "StateSaver"]

logger = client_logger("aioflags.datasource")

#: The file's ``format`` (a file without it is another program's).
FORMAT: Final = "aioflags-saved-state"
_VERSION: Final = 1


@final
class SavedState(Frozen):
    """Where the last good flag data is kept on disk, and how old it may be to start from.

    Made by :func:`aioflags.sources.saved_state`; the presets take it (or a
    path) as ``DataSystem.default(saved_state=...)``. As an initializer it
    reads the file; the data system writes it.

    Attributes:
        path: the file.
        max_age: seconds: a file saved longer ago is not started from.
        interval: seconds: the file is written at most this often.

    Added in version 0.2.0.
    """

    __slots__ = ("path", "max_age", "interval")  # noqa: RUF023 - fields in order
    path: Path
    max_age: float
    interval: float

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_age: float = 86400.0,
        interval: float = 30.0,
    ) -> None:
        given: object = path  # (callers may not be typed)
        if not isinstance(given, (str, os.PathLike)) or not str(given):
            raise ConfigurationError(f"saved_state takes a file path, got {path!r}")
        for name, value in (("max_age", max_age), ("interval", interval)):
            seen: object = value
            if (
                isinstance(seen, bool)
                or not isinstance(seen, (int, float))
                or not seen > 0
            ):
                raise ConfigurationError(
                    f"saved_state {name} is a positive number of seconds, got {value!r}"
                )
        set_field(self, "path", Path(path))
        set_field(self, "max_age", float(max_age))
        set_field(self, "interval", float(interval))

    def __call__(self, context: SourceContext) -> AsyncGenerator[Basis, None]:
        """The initializer: the saved data, if the file is there, whole and recent enough."""
        return self._read(context.config)

    async def _read(self, config: Settings) -> AsyncGenerator[Basis, None]:
        change_set = await self.load(config)
        if change_set is not None:
            # Not persisted again (it is what the file holds), and no basis to
            # ask the flag service for changes since: the network sends it whole.
            yield Basis(change_set=change_set, persist=False)

    async def load(self, config: Settings) -> ChangeSet | None:
        """The saved data (None: none usable, said in one line)."""
        # (abandoned if cancelled: a read hung on a network mount would
        # otherwise hold the client's start, or its close, for good)
        read = await anyio.to_thread.run_sync(
            _load,
            self.path,
            self.max_age,
            config.max_payload_bytes,
            abandon_on_cancel=True,
        )
        if isinstance(read, str):
            logger.warning(
                "Not starting from the saved state in %s: %s", self.path, read
            )
            return None
        if read is None:
            logger.info(
                "No saved state in %s yet: starting from the flag service", self.path
            )
            return None
        text, saved_at = read
        try:
            change_set = await parse_fdv2_poll_text(
                text,
                freeze_gc=config.gc_freeze,
                max_changes=config.max_payload_changes,
            )
        except ProtocolError as exc:
            logger.warning(
                "Not starting from the saved state in %s: it is truncated or"
                " corrupt (%s)",
                self.path,
                exc,
            )
            return None
        age = max(0.0, (wall_ms() - saved_at) / 1000)
        logger.info(
            "Starting from the saved state in %s (saved %.0f s ago): the flag "
            "service's data replaces it when it arrives",
            self.path,
            age,
        )
        return change_set

    def origin(self) -> str:
        """What the READY event says of data that came from this file."""
        return f"from the saved state in {self.path}"


class Preload:
    """The saved state, read and applied while the client still opens its HTTP client.

    The client's start (its CA bundle, its HTTP client) takes longer than
    reading the file: the lifecycle runs :meth:`run` beside it, and the
    supervisor, reaching the saved-state initializer, waits for
    :attr:`done` instead of reading the file again (nothing else is applied
    before it, so the network's data always comes after).
    """

    def __init__(self, saved: SavedState, *, keep: bool = False) -> None:
        self.saved = saved
        #: Set once the file was read (and its data applied, if usable), or
        #: the read given up (:meth:`give_up`).
        self.done = anyio.Event()
        #: Whether the change set applied is kept for :meth:`take` (a flag
        #: plane's mirror), else dropped once applied.
        self._keep = keep
        self._applied: ChangeSet | None = None
        #: The read (and parse): :meth:`give_up` cancels it.
        self._reading = anyio.CancelScope()
        #: Whether the read has ended (its data is being applied, or was).
        self._read = False

    async def run(
        self, config: Settings, apply: Callable[[ChangeSet, str], Awaitable[None]]
    ) -> None:
        """Read the file; hand its data to ``apply`` with where it came from."""
        try:
            change_set = None
            with self._reading:
                change_set = await self.saved.load(config)
            self._read = True
            if change_set is not None and not self._reading.cancel_called:
                await apply(change_set, self.saved.origin())
                if self._keep:
                    self._applied = change_set
        finally:
            self.done.set()

    async def wait(self, limit: float, clock: Clock) -> bool:
        """Wait for the read (and its data applied), at most ``limit`` s (on ``clock``): False when given up.

        The saved state is an initializer, and has ``initializing_timeout``
        as every initializer has: a read stuck on a hung network mount would
        otherwise hold the start for good. Given up, nothing of the file is
        applied (the network's data must not be overwritten by it later); a
        file being applied when the time is up is waited for (that is work
        on the loop, not I/O).
        """
        async with anyio.create_task_group() as group:

            async def timer() -> None:
                await clock.sleep(limit)
                group.cancel_scope.cancel()

            if not math.isinf(limit):
                group.start_soon(timer)
            await self.done.wait()
            group.cancel_scope.cancel()
        if self.done.is_set() or not self.give_up():
            await self.done.wait()
            return True
        logger.warning(
            "The saved state in %s was not read within %g s: starting the next "
            "data source (what the read gives when it ends is dropped)",
            self.saved.path,
            limit,
        )
        return False

    def give_up(self) -> bool:
        """Stop waiting for the read: True if nothing of the file will be applied.

        False: the file is read and its data is being applied (wait for
        :attr:`done`: the network's data must come after it). A read stuck
        in its worker thread (a hung network mount) is left to end there;
        what it reads is dropped.
        """
        if self._read:
            return False
        self._reading.cancel()
        return True

    def take(self) -> ChangeSet | None:
        """The change set applied from the file, once (kept only if asked)."""
        applied, self._applied = self._applied, None
        return applied


#: The file's first bytes, as :class:`StateSaver` writes them (a version
#: and a time in epoch ms: at most 18 digits each, as the writer's are).
_HEAD: Final = re.compile(
    r'\{"format":"aioflags-saved-state","version":(\d{1,18}),"saved_at":(\d{1,18}),'
    r'"events":\['
)
#: How far in the future a file may say it was saved (clocks differ a little).
_SKEW_MS: Final = 60_000


def _load(path: Path, max_age: float, max_bytes: int) -> tuple[str, int] | str | None:
    """The file's text and when it was saved; why it is skipped; None: no file.

    Only a regular file is read (a pipe would block the start, a link to a
    device never end), and one within ``max_bytes`` (``max_payload_bytes``,
    as a payload from the flag service is).
    """
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(status.st_mode):
        return "it is not a regular file (a folder, a pipe, a device...)"
    if status.st_size > max_bytes:
        return (
            f"it is {status.st_size:,} bytes, more than max_payload_bytes"
            f" ({max_bytes:,})"
        )
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if len(data) > max_bytes:  # (it grew since)
        return f"it is more than max_payload_bytes ({max_bytes:,}) bytes"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not UTF-8 text (corrupt)"
    head = _HEAD.match(text)
    if head is None:
        if not text.strip():
            return "it is empty"
        return f"it is not an aioflags saved state (it does not begin {FORMAT!r})"
    if int(head.group(1)) != _VERSION:
        return f"it is of another version ({head.group(1)}; this SDK reads {_VERSION})"
    saved_at = int(head.group(2))
    age = (wall_ms() - saved_at) / 1000
    if age < -_SKEW_MS / 1000:
        return f"it says it was saved {-age:.0f} s from now (a clock set wrong?)"
    if age > max_age:
        return f"it was saved {age:.0f} s ago, longer than max_age ({max_age:.0f} s)"
    return text, saved_at


#: Seconds a closing client may spend writing what it has not saved yet.
CLOSE_BOUND: Final = 2.0


class StateSaver:
    """Keeps the data set applied from the network, and writes it to a :class:`SavedState`.

    :meth:`submit` (synchronous, never blocks) queues an applied change set.
    :meth:`run` folds the queue into the mirror (each item's ``put-object``
    event text by kind and key: the text it arrived in, when it came by
    FDv2; deleted items as versions only), then, once a full data set has
    been seen, writes the file in a worker thread, at most once per
    ``interval``. A failed write is a WARNING (once per run of failures),
    never a fault.
    """

    def __init__(self, saved: SavedState, clock: Clock) -> None:
        self._saved = saved
        self._clock = clock
        self._mirror = EventMirror()
        self._queue: list[ChangeSet] = []
        self._dirty = anyio.Event()
        # change sets submitted, and how many of them the file holds
        self._submitted = 0
        self._saved_up_to = 0
        self._failing = False
        # the path holds what this SDK did not write (said once: left alone)
        self._refused = False
        #: Files written (for tests and diagnostics).
        self.writes = 0

    def submit(self, change_set: ChangeSet) -> None:
        """Queue an applied change set (no work, no I/O)."""
        if change_set.intent is IntentCode.TRANSFER_NONE:
            return
        if change_set.intent is IntentCode.TRANSFER_FULL:
            self._queue.clear()
        self._queue.append(change_set)
        self._submitted += 1
        self._dirty.set()

    def adopt(self, mirror: EventMirror) -> None:
        """Start from ``mirror``'s data (a plane's follower taking the lead: it saved nothing)."""
        self._fold()
        self._mirror = mirror.copy()
        self._submitted += 1
        self._dirty.set()

    def _fold(self) -> None:
        queue, self._queue = self._queue, []
        for change_set in queue:
            self._mirror.fold(change_set)

    async def run(self) -> None:
        """Write the mirror whenever it changed, at most once per interval."""
        while True:
            await self._dirty.wait()
            await self._write()
            await self._clock.sleep(self._saved.interval)

    async def close(self) -> None:
        """Write what is not saved yet (the client is closing), within :data:`CLOSE_BOUND`.

        Shielded: it runs as the data system is cancelled; never raises.
        """
        if self._saved_up_to == self._submitted:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_BOUND):
            await self._write()

    async def _write(self) -> None:
        self._dirty = anyio.Event()
        submitted = self._submitted
        self._fold()
        if not self._mirror.full:
            self._saved_up_to = submitted
            return  # not the whole data set: nothing to start from yet
        text = self._text()
        try:
            refused = await anyio.to_thread.run_sync(
                _save, self._saved.path, text, not self.writes
            )
        except OSError as exc:
            if not self._failing:
                logger.warning(
                    "Could not save the flag data to %s (%s): the client goes on;"
                    " it tries again at the next change",
                    self._saved.path,
                    exc.strerror or exc,
                )
            self._failing = True
            return
        if refused is not None:
            if not self._refused:
                logger.warning(
                    "Not saving the flag data to %s: %s. It is left as it is;"
                    " point saved_state at a file of its own",
                    self._saved.path,
                    refused,
                )
            self._refused = True
            self._saved_up_to = submitted
            return
        if self._failing or self._refused:
            logger.info("Saving the flag data to %s works again", self._saved.path)
        self._failing = self._refused = False
        self._saved_up_to = submitted
        self.writes += 1

    def _text(self) -> str:
        """The file's text, from the mirror's event texts (nothing serialised again)."""
        events = [
            '{"event":"server-intent","data":{"payloads":[{"id":"saved-state",'
            '"target":0,"intentCode":"xfer-full"}]}}'
        ]
        events.extend(self._mirror.full_events())
        events.append('{"event":"payload-transferred","data":{"state":"","version":0}}')
        head = (
            f'{{"format":"{FORMAT}","version":{_VERSION},"saved_at":{wall_ms()},'
            '"events":['
        )
        return head + ",".join(events) + "]}"


#: How every file :class:`StateSaver` writes begins (and a file at the
#: path that does not is another program's: never replaced).
_OURS: Final = b'{"format":"aioflags-saved-state",'


#: How old a temporary file of a writer must be to be taken for one left by
#: a writer that was killed (a write takes milliseconds; another process
#: saving to the same path may be writing one now).
_STALE_SECONDS: Final = 60.0


def _sweep(path: Path) -> None:
    """Remove the temporary files a killed writer left beside ``path``.

    Only this SDK's own (``.<name>.<8 characters>.tmp``, as
    :func:`_write_atomically` names them), regular files, a minute old or
    more. Whatever cannot be removed stays; it is tried again next start.
    """
    mine = re.compile(re.escape(f".{path.name}.") + r"[A-Za-z0-9_]{8}\.tmp")
    now = wall_ms() / 1000  # (file times are wall-clock times)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if not mine.fullmatch(entry.name):
            continue
        try:
            status = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(status.st_mode) and now - status.st_mtime >= _STALE_SECONDS:
                os.unlink(entry.path)
        except OSError:
            continue


def _save(path: Path, text: str, sweep: bool = False) -> str | None:
    """Write ``text`` to ``path``, unless something not ours is there: why not, then.

    Only a saved state this SDK wrote (a regular file beginning as it
    writes one, whatever its version, whole or not) is replaced, and a
    path with nothing at it is written (its folders made, as the user's
    ``saved_state`` path asks). Anything else (another program's
    file, an empty one, a directory, a link, a pipe) is left as it is.
    """
    try:
        status = path.lstat()
    except FileNotFoundError:
        status = None
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # (asked for)
    if status is not None:
        if not stat.S_ISREG(status.st_mode):
            return "it is not a regular file (a link, a folder, a pipe...)"
        with path.open("rb") as existing:
            head = existing.read(len(_OURS))
        if head != _OURS:
            return "it holds something else than a saved state this SDK wrote"
    if sweep:
        _sweep(path)
    _write_atomically(path, text)
    return None


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path``: a temporary file beside it, synced, renamed over it."""
    folder = path.parent
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=folder
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    try:  # the rename itself, on disk (POSIX; Windows has no directory fd)
        directory = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)
