"""The files of a user's tree that a lifecycle command rewrites: found, read, written back.

The rules (docs/lifecycle-tools.md, "Safe on real trees"):

- Only regular files are read. A FIFO, a device or a socket named ``*.py``
  is never opened for long: it is listed and skipped (opened, if at all,
  without blocking and without following a link, and let go once
  ``fstat`` says what it is).
- A symlink is followed only to a regular file inside the paths named;
  the file is then read and rewritten at its target (the link stays a
  link). A link elsewhere, or to nothing, is listed and skipped.
- A file is written only if its bytes (and its mode, owner and links) are
  still those that were read, compared just before the rename that
  replaces it: a temporary file
  beside it, with the file's mode (and owner, where the process may set
  it), renamed over it. A file changed meanwhile is left as it is and
  listed.
- A read-only file, or one with other hard links (a rename would split
  them), is left as it is and listed when the rewrite would change it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import FrameType

__all__ = [
    "MAX_SOURCE_BYTES",
    "Found",
    "Skipped",
    "Source",
    "find",
    "read",
    "terminated_as_interrupted",
    "write",
]

#: The largest source file read (a generated table of a few MiB passes).
MAX_SOURCE_BYTES: Final = 16 * 1024 * 1024
_SKIPPED_DIRS: Final = frozenset(
    {".git", ".venv", "venv", "__pycache__", "node_modules", "site-packages", ".tox"}
)
_CHANGED: Final = (
    "changed since it was read (its bytes, mode or links): left as it is "
    "(run the command again)"
)
_READ_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


@dataclass(frozen=True)
class Skipped:
    """A file left as it was, and why."""

    path: Path
    why: str

    def __str__(self) -> str:
        return f"{self.path}: {self.why}"


@dataclass(frozen=True)
class Found:
    """A file to read: the path as found, and where its bytes live (a link's target)."""

    path: Path
    target: Path


@dataclass(frozen=True)
class Source:
    """A file's bytes as read, and what its rewrite must keep."""

    path: Path
    target: Path
    data: bytes
    mode: int
    uid: int
    gid: int
    links: int
    device: int
    inode: int


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    """Whether ``path`` is one of ``roots``, or in one where the walk goes (not a hidden or skipped directory)."""
    for root in roots:
        if path == root:
            return True
        if root in path.parents:
            folders = path.relative_to(root).parts[:-1]
            if not any(_skipped(folder) for folder in folders):
                return True
    return False


def _skipped(folder: str) -> bool:
    """A directory the walk does not enter."""
    return folder in _SKIPPED_DIRS or folder.startswith(".")


def _classify(
    path: Path, roots: Sequence[Path], found: dict[Path, Found], skipped: list[Skipped]
) -> None:
    """Add ``path`` (a name in the tree, not a directory walked) to ``found`` or ``skipped``."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        skipped.append(Skipped(path, f"cannot read it: {exc.strerror or exc}"))
        return
    target = path
    if stat.S_ISLNK(mode):
        real = Path(os.path.realpath(path))
        try:
            mode = os.stat(real).st_mode
        except OSError:
            skipped.append(Skipped(path, "a symlink to nothing: skipped"))
            return
        if not stat.S_ISREG(mode):
            skipped.append(
                Skipped(path, f"a symlink to {_kind(mode)}, not a file: skipped")
            )
            return
        if not _inside(real, roots):
            skipped.append(
                Skipped(
                    path,
                    f"a symlink to {real}, outside the paths named: left as it is "
                    "(name that file to rewrite it)",
                )
            )
            return
        target = real
    elif not stat.S_ISREG(mode):
        skipped.append(Skipped(path, f"{_kind(mode)}, not a file: skipped"))
        return
    else:
        target = Path(os.path.realpath(path))
    # (one file reached twice, by its name and by a link: read once)
    found.setdefault(target, Found(path, target))


def find(paths: Sequence[Path]) -> tuple[list[Found], list[Skipped]]:
    """The ``.py`` files of ``paths`` (files, or directories walked), sorted; what was skipped.

    A file named is taken whatever its name; a directory is walked for
    ``*.py`` names (not into hidden directories, virtual environments or
    ``__pycache__``; a linked directory is not followed).

    Raises:
        FileNotFoundError: a path named does not exist (its ``filename``).
    """
    roots = [Path(os.path.realpath(p)) for p in paths]
    found: dict[Path, Found] = {}
    skipped: list[Skipped] = []
    names: list[Path] = []
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            if os.path.islink(path):
                names.append(path)  # (a dangling link: said as such)
                continue
            raise FileNotFoundError(2, "no such file or directory", str(path)) from None
        except OSError:
            names.append(path)
            continue
        if not stat.S_ISDIR(mode):
            names.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not _skipped(d))
            names += (Path(root, f) for f in files if f.endswith(".py"))
    for path in names:
        _classify(path, roots, found, skipped)
    return sorted(found.values(), key=lambda f: str(f.path)), skipped


def _read_fd(target: Path) -> tuple[bytes, os.stat_result] | str:
    """The bytes of the regular file at ``target`` and its status, or why not."""
    try:
        fd = os.open(target, _READ_FLAGS)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            return f"{_kind(status.st_mode)}, not a file: skipped"
        if status.st_size > MAX_SOURCE_BYTES:
            return (
                f"larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MiB: skipped "
                "(not a source file this command reads)"
            )
        chunks = []
        size = 0
        while size <= MAX_SOURCE_BYTES:
            chunk = os.read(fd, 1024 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_SOURCE_BYTES:
            return (
                f"grew past {MAX_SOURCE_BYTES // (1024 * 1024)} MiB while read: skipped"
            )
        return b"".join(chunks), status
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    finally:
        os.close(fd)


def read(found: Found) -> Source | Skipped:
    """The file's bytes, or why it is skipped."""
    got = _read_fd(found.target)
    if isinstance(got, str):
        return Skipped(found.path, got)
    data, status = got
    return Source(
        found.path,
        found.target,
        data,
        stat.S_IMODE(status.st_mode),
        status.st_uid,
        status.st_gid,
        status.st_nlink,
        status.st_dev,
        status.st_ino,
    )


def writable(source: Source) -> str | None:
    """None when ``source`` may be rewritten; else why it is left as it is."""
    if source.mode & 0o222 == 0 or not os.access(source.target, os.W_OK):
        return "read-only: left as it is (make it writable to rewrite it)"
    if source.links > 1:
        return (
            f"has {source.links} hard links, which a rewrite would split: left as it is"
        )
    return None


def _same(source: Source) -> bool:
    got = _read_fd(source.target)
    if isinstance(got, str):
        return False
    data, status = got
    return (
        data == source.data
        and status.st_ino == source.inode
        and status.st_dev == source.device
        and stat.S_IMODE(status.st_mode) == source.mode
        and status.st_nlink == source.links
        and (status.st_uid, status.st_gid) == (source.uid, source.gid)
    )


def write(source: Source, data: bytes) -> str | None:
    """Replace the file's bytes with ``data`` if they are still those read; None when written.

    Else the file is left as it was, and the answer says why: it changed
    since it was read, or it cannot be written (the reason).
    """
    if not _same(source):
        return _CHANGED
    why = writable(source)
    if why is not None:
        return why
    target = source.target
    try:
        fd, temp = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".aioflags-tmp"
        )
    except OSError as exc:
        return f"cannot write beside it: {exc.strerror or exc}: left as it is"
    owner = True
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), source.mode)
            if (source.uid, source.gid) != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(out.fileno(), source.uid, source.gid)
                except PermissionError:
                    owner = False
        if not owner:
            Path(temp).unlink()
            return (
                "owned by another user or group, which a rewrite would not keep: "
                "left as it is"
            )
        # Compared just before the rename: an edit saved since the read wins.
        if not _same(source):
            Path(temp).unlink()
            return _CHANGED
        os.replace(temp, target)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        return f"cannot write it: {exc.strerror or exc}: left as it is"
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """While the command writes, SIGTERM (``timeout``, a CI job cancelled) ends it as Ctrl-C does.

    A write interrupted so removes its temporary file (:func:`write`)
    instead of leaving it beside the user's file. The command's own
    process only (its main thread); the handler before is put back.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
