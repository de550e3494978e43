"""Log lines that say which client logged them, for two environments in one process.

The SDK's loggers are module-level (``aioflags.datasource``...), shared by
every client of the process. A client's own tasks (its data source, its
events, its start) run with :data:`CLIENT` set to its label, and the
loggers here (:func:`client_logger`, a ``LoggerAdapter``: nothing of the
``logging`` module's configuration is changed) put that label on each
record they make: always as the field ``aioflags_client``, and, while more
than one client is running in the process, at the start of the message,
``[sdk-…abcdef] aioflags client READY in 31 ms with 12 flags``. A line
from code that no client runs (a configuration error, the command line)
is left as it is.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterator, MutableMapping

    _Adapter = logging.LoggerAdapter[logging.Logger]
else:
    _Adapter = logging.LoggerAdapter

__all__ = ["CLIENT", "ClientLogger", "client_label", "client_logger", "running"]

#: The label of the client whose task is running (None: no client's).
CLIENT: Final[ContextVar[str | None]] = ContextVar("aioflags_client", default=None)

#: How many clients are running in the process (their labels go into
#: messages when there are two or more). Running, not alive: a closed
#: client waiting for the garbage collector must not change what a
#: single running client's lines say.
_RUNNING: list[int] = [0]
_LOCK = threading.Lock()
_NUMBERS: Final = itertools.count(1)

#: An SDK key at least this long is named by its last six characters (as
#: LaunchDarkly's own pages show keys); a shorter one not at all.
_NAMED_KEY: Final = 20
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")


def client_label(sdk_key: str | None, application_id: str | None) -> str:
    """How a client is named in log lines: its SDK key's end, or a number.

    ``sdk-…abcdef`` (the last six characters of the key, as LaunchDarkly's
    pages show a key; never more), followed by ``application_id`` when it
    is set (``sdk-…abcdef checkout``); a client without a key that long is
    ``client 2`` (the order clients were made in the process).
    """
    if sdk_key is not None and len(sdk_key) >= _NAMED_KEY:
        start = "sdk-" if sdk_key.startswith("sdk-") else ""
        # (only characters a key has: a label is put in %-formatted messages)
        label = f"{start}…{_UNSAFE.sub('', sdk_key[-6:])}"
    else:
        label = f"client {next(_NUMBERS)}"
    if application_id:  # (a valid tag: [A-Za-z0-9._-])
        label += f" {_UNSAFE.sub('', application_id)}"
    return label


def _forked() -> None:
    """In a forked child: no client runs (the parent's runs are not here)."""
    global _LOCK  # (a lock held at the fork would be held forever)
    _LOCK = threading.Lock()
    _RUNNING[0] = 0


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_forked)


@contextlib.contextmanager
def running() -> Iterator[None]:
    """Count a client as running for the duration (its run's task)."""
    with _LOCK:
        _RUNNING[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            _RUNNING[0] -= 1


class ClientLogger(_Adapter):
    """A module's logger that names the client whose task logs (see the module)."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Add the running client's label to the record (and the message, if two run).

        The client is the one whose task logs, or the one a caller names
        (``extra={"aioflags_client": label}``: an evaluation, which runs in
        the caller's task, names the client it evaluates for).
        """
        extra = kwargs.get("extra")
        label = extra.get("aioflags_client") if extra else None
        if label is None:
            label = CLIENT.get()
        if label is None:
            return msg, kwargs
        kwargs["extra"] = (
            {**extra, "aioflags_client": label} if extra else {"aioflags_client": label}
        )
        if _RUNNING[0] > 1:
            msg = f"[{label}] {msg}"
        return msg, kwargs


def client_logger(name: str) -> ClientLogger:
    """The logger ``name``, naming the client whose task logs."""
    return ClientLogger(logging.getLogger(name), None)
