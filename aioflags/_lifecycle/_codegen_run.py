"""``aioflags codegen``'s driver: read the flags, generate the module, write it safely.

It writes into the user's source tree, so it never costs a line of their work:

- ``-o FILE`` is written only when FILE does not exist, or when it is a
  regular file that starts with codegen's header (:data:`HEADER`), read
  from the file itself. Anything else (a hand-written module, an empty
  file, a directory, a symbolic link, a FIFO) is refused, named, and left
  byte for byte: codegen never wrote it.
- The module is generated and encoded whole before the disk is touched,
  written to a temporary file beside FILE and renamed over it (FILE's mode
  kept), once FILE is seen to be still what was read (a new FILE: that
  none has appeared). A failure at any point leaves the previous module as
  it was; the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from typing import TYPE_CHECKING, Final

from aioflags._lifecycle._codegen import (
    HEADER,
    CodegenError,
    command_line,
    generate,
    load,
    unified_diff,
)
from aioflags._lifecycle._output import say
from aioflags._lifecycle._tree import terminated_as_interrupted

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["read_module", "run", "write_module"]

#: The first line of a module codegen wrote, as a checkout may end it (git's
#: autocrlf writes CRLF).
_HEADER_LINES: Final = ((HEADER + "\n").encode(), (HEADER + "\r\n").encode())
_KINDS: Final = {
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
}
_LEFT: Final = (
    "left as it is (codegen writes only a file that does not exist, or one "
    "it wrote: remove it, or give -o another path)"
)


def read_module(path: Path) -> tuple[bytes, int] | None:
    """The bytes and mode of the module codegen wrote at ``path``; None when none is there.

    Raises:
        CodegenError: something else is at ``path`` (the message names it
            and says it is left as it is), or it cannot be read.
    """
    try:
        seen = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CodegenError(
            f"{path}: cannot look at it: {exc.strerror or exc}"
        ) from None
    kind = stat.S_IFMT(seen.st_mode)
    if kind != stat.S_IFREG:
        raise CodegenError(f"{path} is {_KINDS.get(kind, 'no regular file')}: {_LEFT}")
    # Not through a symbolic link put there since, and never waiting on a FIFO.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise CodegenError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as file:
        opened = os.fstat(file.fileno())
        if (opened.st_dev, opened.st_ino) != (seen.st_dev, seen.st_ino):
            raise CodegenError(f"{path} changed while codegen read it: {_LEFT}")
        data = file.read()
    if not data:
        raise CodegenError(f"{path} is empty, and codegen never writes that: {_LEFT}")
    if not data.startswith(_HEADER_LINES):
        raise CodegenError(
            f"{path} exists and codegen did not write it (its first line is "
            f"not {HEADER.split(':')[0]}...): {_LEFT}"
        )
    return data, stat.S_IMODE(opened.st_mode)


def write_module(path: Path, data: bytes, before: tuple[bytes, int] | None) -> None:
    """Put ``data`` at ``path`` atomically, if ``path`` still holds ``before`` (``read_module``'s).

    Raises:
        CodegenError: ``path`` changed since it was read (it is left as it is).
        OSError: the temporary file cannot be written or renamed (``path``
            is left as it was).
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # 0o666: a new module gets the mode the umask gives any new file.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if before is not None:
            os.chmod(temp, before[1])
            if read_module(path) != before:
                raise CodegenError(f"{path} changed while codegen ran: {_LEFT}")
            os.replace(temp, path)
            return
        try:
            os.link(temp, path)  # (fails if a file has appeared there since)
        except FileExistsError:
            raise CodegenError(f"{path} appeared while codegen ran: {_LEFT}") from None
        except OSError:  # no hard links here: as near as a rename can come
            if os.path.lexists(path):
                raise CodegenError(
                    f"{path} appeared while codegen ran: {_LEFT}"
                ) from None
            os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def run(
    files: list[Path],
    ld_files: list[Path],
    out: Path,
    *,
    check: bool,
    names: Mapping[str, str],
) -> int:
    """Write (or ``check``) the typed accessors of the flags in ``files`` and ``ld_files``.

    0 when written, or current; 1 when ``check`` finds ``out`` stale (the
    diff printed); 2 when a file cannot be read, the flags cannot be typed,
    or ``out`` is no module codegen wrote (it is left as it is).
    """
    try:
        sources = load(files, ld_files)
        generated = generate(sources, command_line(files, ld_files, out, names), names)
        data = generated.text.encode("utf-8")  # (whole, before the disk is touched)
        before = read_module(out)
    except CodegenError as exc:
        say(f"error: {exc}", err=True)
        return 2
    if check:
        # (a checkout with CRLF line ends, git's autocrlf, is the same module)
        old = b"" if before is None else before[0].replace(b"\r\n", b"\n")
        if old == data:
            say(f"{out} is current ({generated.flags} flags)")
            return 0
        text = old.decode("utf-8", errors="replace")
        diff = unified_diff(text, generated.text, str(out))
        say(diff or f"{out} differs\n", end="")
        say(
            f"{out} is not what the flags make now: run the command without --check",
            err=True,
        )
        return 1
    try:
        with terminated_as_interrupted():
            write_module(out, data, before)
    except CodegenError as exc:
        say(f"error: {exc}", err=True)
        return 2
    except OSError as exc:
        say(
            f"error: {out}: cannot write: {exc.strerror or exc} (left as it was)",
            err=True,
        )
        return 2
    for note in generated.notes:
        say(note)
    say(f"wrote {out}: {generated.flags} flags")
    return 0
