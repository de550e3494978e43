"""What an OFREP request asks: its body's ``context``, mapped for each flag's system.

The body read and checked (:func:`read_context`: JSON, an object, its
context under ``context``), what the app's ``context=`` callable sees of
the request (:class:`Request`: headers, cookies, scope), the context sent
kept to be mapped by the system of the flag evaluated (:class:`Asked`),
and the refusal of input OFREP answers with 400 (:class:`BadInput`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import httpx

from aioflags._asgi._limits import BodyRefused, read_body
from aioflags._client._ofcontext import ContextError
from aioflags._core._exceptions import ProtocolError
from aioflags._core._json import parse

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping, MutableMapping

    from starlette.types import Receive, Scope

    from aioflags._evaluation._context import Context
    from aioflags._systems import FlagSystem

__all__ = [
    "Asked",
    "BadInput",
    "ContextFn",
    "Request",
    "read_context",
]

logger = logging.getLogger("aioflags.ofrep")


class Request:
    """What a ``context=`` callable sees of the request: headers, cookies, scope."""

    __slots__ = ("cookies", "headers", "scope")

    def __init__(self, scope: Scope) -> None:
        #: The ASGI scope of the request.
        self.scope: MutableMapping[str, Any] = scope
        headers = httpx.Headers(scope.get("headers", []))
        #: Its headers (any case finds them).
        self.headers: Mapping[str, str] = headers
        #: Its cookies by name (HTTP/2 sends a ``Cookie`` header per cookie).
        self.cookies: Mapping[str, str] = _cookies(headers.get_list("cookie"))


def _cookies(headers: list[str]) -> dict[str, str]:
    """``Cookie`` headers' cookies by name, read as browsers write them.

    Not ``http.cookies.SimpleCookie``: it drops every cookie of a header
    with one it does not take (a space in a value, a pair with no ``=``).
    A value in double quotes is read without them.
    """
    cookies: dict[str, str] = {}
    for pair in "; ".join(headers).split(";"):
        name, _, value = pair.partition("=") if "=" in pair else ("", "", pair)
        name, value = name.strip(), value.strip()
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name or value:
            cookies[name] = value
    return cookies


class BadInput(Exception):
    """A request OFREP answers with 400 and a failure body.

    ``unread``: its body was not read to its end (too large, too slow):
    the answer closes the connection, so that no client sends its next
    request on it.
    """

    def __init__(self, code: str, details: str, *, unread: bool = False) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.unread = unread


ContextFn = Callable[[Request, "dict[str, Any]"], "Context | Awaitable[Context]"]


class Asked:
    """A request's ``context`` object, to map for the flag evaluated.

    Each flag's system maps it (``FlagSystem.context_from``): a
    LaunchDarkly flag's as ``aioflags.openfeature.to_context`` does (a
    targeting key needed), a flagd flag's as flagd's providers do (none
    needed, every attribute flagd's). ``made``: the app's ``context=``
    callable's context, which every flag gets instead.
    """

    __slots__ = ("made", "ofrep")

    def __init__(self, ofrep: dict[str, Any], made: Context | None) -> None:
        self.ofrep = ofrep
        self.made = made

    def context(self, system: FlagSystem) -> Context:
        """The context for a flag of ``system`` (raises :class:`BadInput`)."""
        if self.made is not None:
            return self.made
        ofrep = self.ofrep
        try:
            return system.context_from(ofrep.get("targetingKey"), ofrep, logger)
        except ContextError as exc:
            raise BadInput(exc.code, str(exc)) from None

    def mapped(self, system: FlagSystem) -> Context | BadInput:
        """:meth:`context`, or why ``system`` refuses it."""
        try:
            return self.context(system)
        except BadInput as bad:
            return bad


#: A body's top-level names that belong in its ``context``: a body with one
#: of them and no ``context`` put its context beside it, not in it.
_CONTEXT_NAMES: Final = ("targetingKey", "targeting_key", "kind", "key")


def _misplaced(body: Mapping[str, Any]) -> None:
    """Refuse a body whose context attributes are at its top level (no ``context``).

    Raises:
        BadInput: INVALID_CONTEXT, naming the attributes and the wrapper.
    """
    names = [name for name in _CONTEXT_NAMES if name in body]
    if names:
        found = ", ".join(json.dumps(name) for name in names)
        raise BadInput(
            "INVALID_CONTEXT",
            f"{found} at the top of the body: OFREP reads the context under "
            '"context", as in {"context": {"targetingKey": "u1", ...}}',
        )


async def read_context(receive: Receive) -> dict[str, Any]:
    """The request's ``context`` object (``{}`` when absent).

    A body with context attributes at its top level and no ``context``
    is refused, saying where they go: not evaluated for no context.

    The body is bounded by the :class:`~aioflags._asgi._limits.BodyLimits` around this
    app (``OFREPApp``'s own, or the flag service's): past a bound, OFREP
    answers ``400`` in its own words.
    """
    try:
        body = await read_body(receive)
    except BodyRefused as refused:
        raise BadInput("GENERAL", refused.message, unread=True) from None
    if not body.strip():
        return {}
    try:
        data = parse(body)
    except ProtocolError as exc:
        raise BadInput("INVALID_CONTEXT", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput("INVALID_CONTEXT", "the body must be a JSON object")
    if "context" not in data:
        # {"targetingKey": "u1"}: evaluated as {} it would serve another
        # bucket without a word (a body with no context at all is {}).
        _misplaced(data)
    context = data.get("context", {})
    if not isinstance(context, dict):
        raise BadInput("INVALID_CONTEXT", "'context' must be a JSON object")
    return context
