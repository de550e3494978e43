"""A real redis-server for the store tests: Debian's binary on a free loopback port.

No persistence (``--save "" --appendonly no``), a private working directory,
readiness by handshake (the server's own "Ready to accept connections" line on
its log, read from a pipe: no sleeping, no polling), stopped by PID. A test
can stop and start it again on the same port to simulate an outage.

The tests that need one carry the ``redis`` marker (tests/conftest.py adds
it to every test that uses the ``redis_server`` fixture). Without a
redis-server they are skipped, with a message saying how to install it,
except under CI (``CI`` or ``REDIS_TESTS_REQUIRED`` set), where they fail: CI
must never pass by skipping them. Whether there is one is looked up once per
session (:func:`find`), so that a redis-server installed while the tests run
cannot make one test skip and the next run.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import IO, Final

import pytest

_READY: Final = "Ready to accept connections"
_IN_USE: Final = "Address already in use"
_MISSING: Final = (
    "redis-server not found: install it (Debian: apt-get install redis-server) "
    "to run the Redis store tests"
)


def required() -> bool:
    """Whether a missing redis-server is a failure (CI) rather than a skip."""
    return bool(os.environ.get("CI") or os.environ.get("REDIS_TESTS_REQUIRED"))


@functools.cache
def find() -> str | None:
    """The redis-server binary, or None: looked up once, the session's answer."""
    return shutil.which("redis-server") or shutil.which(
        "redis-server", path="/usr/sbin:/usr/local/sbin"
    )


def executable() -> str:
    """The redis-server to run; skips (fails under CI) when there is none."""
    path = find()
    if path is None:
        if required():
            pytest.fail(f"{_MISSING} (required under CI)", pytrace=False)
        pytest.skip(_MISSING)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; ``start()``/``stop()`` may be called again."""

    def __init__(self, binary: str, directory: Path) -> None:
        self._binary = binary
        self._directory = directory
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start on this server's port (a free one the first time); wait until ready."""
        for _ in range(5):
            port = self.port or _free_port()
            if self._try_start(port):
                self.port = port
                return
            if self.port:
                break  # a restart must keep its port
        raise RuntimeError(f"redis-server could not listen on 127.0.0.1:{self.port}")

    def _try_start(self, port: int) -> bool:
        process = subprocess.Popen(
            [
                self._binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self._directory),
                "--logfile", "",
                "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        log = _read_until_ready(process.stdout)
        if log is None:
            self._process = process
            return True
        process.wait(timeout=10)
        process.stdout.close()
        if _IN_USE in log:
            return False
        raise RuntimeError(f"redis-server did not start:\n{log}")

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def _read_until_ready(stream: IO[str]) -> str | None:
    """None once the server says it is ready; its whole log if it exits first."""
    lines = []
    for line in stream:
        if _READY in line:
            return None
        lines.append(line)
    return "".join(lines)
