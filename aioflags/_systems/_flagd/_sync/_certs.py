"""``DataSystem.flagd(cert_path=...)``: the CA file, checked at configuration, read when it changes.

A channel is opened for every attempt (``_link.py``), and each needs the
CA's certificates. They are read once, and again only when the file's
identity or size or modification time changes (a certificate rotated in
place is picked up; an unchanged one is not read again at every retry).
The path must name a regular file of at most :data:`MAX_CA_BYTES` (a
device such as ``/dev/zero``, a FIFO or a folder is refused): no attempt
ever reads more than that.
"""

from __future__ import annotations

import os
import stat
from typing import Final

__all__ = ["MAX_CA_BYTES", "CaFile", "CaFileError", "ca_file_problem"]

#: The most bytes ``cert_path`` may hold (a bundle of every public root CA is ~220 KB).
MAX_CA_BYTES: Final = 1024 * 1024
_PEM_MARK: Final = b"-----BEGIN CERTIFICATE-----"


class CaFileError(Exception):
    """``cert_path`` cannot be used now: the message says why, in one line."""


def _identity(path: str) -> tuple[int, int, int, int]:
    """The file's (device, inode, size, mtime) after checking it; raises CaFileError."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise CaFileError(
            f"cert_path {path!r} cannot be read: {exc.strerror or exc}"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise CaFileError(f"cert_path {path!r} is not a file (give the CA's PEM file)")
    if info.st_size > MAX_CA_BYTES:
        raise CaFileError(
            f"cert_path {path!r} holds {info.st_size} bytes: a CA's PEM file "
            f"is at most {MAX_CA_BYTES // 1024} KiB here"
        )
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            pem = file.read(MAX_CA_BYTES + 1)
    except OSError as exc:
        raise CaFileError(
            f"cert_path {path!r} cannot be read: {exc.strerror or exc}"
        ) from None
    if len(pem) > MAX_CA_BYTES:  # (it grew since it was checked)
        raise CaFileError(
            f"cert_path {path!r} holds more than {MAX_CA_BYTES // 1024} KiB: "
            "a CA's PEM file is at most that here"
        )
    if _PEM_MARK not in pem:
        raise CaFileError(
            f"cert_path {path!r} holds no PEM certificate ({_PEM_MARK.decode()} ...)"
        )
    return pem


def ca_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be the CA file (one line), or None: checked at configuration."""
    try:
        _identity(path)
        _read(path)
    except CaFileError as exc:
        return str(exc)
    return None


class CaFile:
    """The CA's certificates of ``cert_path``: read once, and again only when the file changes.

    Shared by the initializer and the synchronizer of one data system. Its
    :meth:`pem` does blocking file I/O (a ``stat``, and a read of at most
    :data:`MAX_CA_BYTES` when the file changed): call it in a worker thread.
    """

    __slots__ = ("_identity", "_pem", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._identity: tuple[int, int, int, int] | None = None
        self._pem = b""

    def pem(self) -> bytes:
        """The certificates (PEM), read again only if the file changed; raises CaFileError."""
        identity = _identity(self.path)
        if identity != self._identity:
            self._pem = _read(self.path)
            self._identity = identity
        return self._pem
