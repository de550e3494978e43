"""The flag console's web app under ``/ui``: its page, its assets and its JSON API.

``_console`` holds what the console knows (the evaluations log, the SDKs
seen, the flags it changed, its token and rules); this module answers its
requests, as the routes that ``_app`` mounts under ``/ui``:

- ``GET /ui/``: the page, with its token; ``console.js``, ``console.css``
  and ``favicon.svg``: static files (``console/static``);
- ``GET /ui/api/state`` and ``GET /ui/api/events`` (the same as server-sent
  events, again on every change: the server's fan-out);
- ``GET /ui/api/flag?key=K``, ``POST /ui/api/flag``, ``POST /ui/api/reset``,
  ``POST /ui/api/evaluate``, ``POST /ui/api/lens`` and ``POST
  /ui/api/guards/<name>/release`` (docs/console.md).

The service applies the console's rules (``Console.refusal``) and puts its
security headers on every answer under ``/ui`` (``DefaultHeaders``),
refusals and errors included, before and around these routes; its errors
(an ``HTTPException``'s ``{"message": ...}``, a body past its limits) are
the service's.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from importlib import resources
from typing import TYPE_CHECKING, Final

from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from aioflags._core._exceptions import ProtocolError
from aioflags._core._json import parse
from aioflags._core._pacing import Pacer
from aioflags._datasystem._sources._versions import same_content
from aioflags._evaluation._context import read_context, written_otherwise

from . import _words as words
from ._console import (
    LENS_MAX_TTL,
    PREFIX,
    Console,
    FlagHost,
    _visible_all,
    flag_row,
)
from ._shown import cut, visible

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp

    from aioflags._core._json import JSONObject, JSONValue

    from ._flagset import FlagSet

__all__ = ["console_app"]

#: The lens's logger: each link made is told there (INFO), never its token.
lens_logger = logging.getLogger("aioflags.lens")

#: The page's token goes where the template says.
_TOKEN_PLACEHOLDER: Final = b"{{token}}"
#: An Evaluate answer names at most this many ignored properties (its note
#: counts the rest).
_IGNORED_SHOWN: Final = 20


def console_app(
    console: Console, server: FlagHost, data: FlagSet, events: ASGIApp
) -> Mount:
    """The console of ``server`` (``data``: its flags), mounted under ``/ui``.

    ``events``: the page's event stream (the server's fan-out).
    """
    # RFC 9239's type for scripts, as Python 3.12 has it (3.10 and 3.11, and
    # some /etc/mime.types, say application/javascript).
    mimetypes.add_type("text/javascript", ".js")
    api = _ConsoleAPI(console, server, data)
    return Mount(
        PREFIX,
        routes=[
            Route("/", api.page, methods=["GET"]),
            Mount(  # (its own mount: a 405 of the API is not the files')
                "/api",
                routes=[
                    Route("/state", api.state, methods=["GET"]),
                    Route("/events", events, methods=["GET"]),
                    Route("/flag", api.flag, methods=["GET", "POST"]),
                    Route("/reset", api.reset, methods=["POST"]),
                    Route("/evaluate", api.evaluate, methods=["POST"]),
                    Route("/lens", api.lens, methods=["POST"]),
                    Route(
                        "/guards/{name:path}/release",
                        api.release_guard,
                        methods=["POST"],
                    ),
                ],
            ),
            Mount("/", StaticFiles(packages=[(__package__, "console/static")])),
        ],
    )


def _error(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status)


async def _json_body(request: Request) -> JSONValue:
    """The request's JSON body (a 400 that says why if it is none)."""
    try:
        return parse(await request.body())
    except ProtocolError as exc:  # not JSON, not UTF-8, nested too deep
        raise HTTPException(400, f"the body must be JSON ({exc})") from None


async def _keyed_body(request: Request) -> tuple[str, JSONObject]:
    """The request's ``{"key": ..., ...}`` body and its key (a 400 if it is none)."""
    body = await _json_body(request)
    if isinstance(body, dict) and isinstance(key := body.get("key"), str):
        return key, body
    raise HTTPException(400, 'the body must be {"key": ..., ...}')


def _claim(token: str, name: str) -> object:
    """A claim of a token the console just made (read, not verified)."""
    from aioflags._lens._token import jwt

    claims = jwt().decode(token, options={"verify_signature": False})
    return claims.get(name) if isinstance(claims, dict) else None


class _ConsoleAPI:
    """The console's routes over its state (``Console``) and the server's flags.

    It reads the flags themselves (``data``: never copied; a change replaces
    a flag's object) and changes them through ``server.set_flag``.
    """

    def __init__(self, console: Console, server: FlagHost, data: FlagSet) -> None:
        self._console = console
        self._server = server
        self._data = data
        template = resources.files(__package__).joinpath("console", "index.html")
        self._page = template.read_bytes().replace(
            _TOKEN_PLACEHOLDER, console.token.encode()
        )

    async def page(self, request: Request) -> Response:
        """``GET /ui/``: the page, its token in it (only a same-origin page reads it)."""
        return HTMLResponse(self._page)

    async def state(self, request: Request) -> Response:
        """``GET /ui/api/state``: flags, evaluations, SDKs, trouble (written once per change)."""
        text = self._console.state_text(self._data.flags)
        return Response(text, media_type="application/json")

    async def flag(self, request: Request) -> Response:
        """``/ui/api/flag``: read one flag (``GET``), or change it (``POST``).

        (One route for both, so that a 405 there allows both.)
        """
        if request.method == "POST":
            return await self.change(request)
        return await self.details(request)

    async def details(self, request: Request) -> Response:
        """``GET /ui/api/flag?key=K``: one flag's targeting, in words."""
        data, key = self._data, request.query_params.get("key")
        if key is None:
            return _error(400, "give the flag's key: /ui/api/flag?key=...")
        flags = data.flags
        flag = flags.get(key)
        if flag is None:
            return _error(404, f"no flag {key!r}")
        answer = words.details(
            flag, flags, self._console.originals.get(key), data.segments.keys()
        )
        shown = _visible_all(answer)
        assert isinstance(shown, dict)
        return JSONResponse({**shown, "key": key, "label": visible(key)})

    async def evaluate(self, http: Request) -> Response:
        """What a context gets from every flag (or one), and why.

        An invalid context, or a flag that is not there, is answered as an
        app's evaluation is (the default, with ``USER_NOT_SPECIFIED`` or
        ``FLAG_NOT_FOUND``), the invalid context's why beside it: a 4xx is
        for a body that is not the API's. Every flag of a large data set is evaluated in slices (``Pacer``),
        other requests served in between: at 20,000 flags one Evaluate held
        the event loop for 2.5 s. The answer is of the data as it was asked
        (a change meanwhile shows in the next one).
        """
        request = await _json_body(http)
        if not isinstance(request, dict) or "context" not in request:
            return _error(
                400, 'the body must be {"context": {...} or "key", "flag": ...}'
            )
        given = request["context"]
        if isinstance(given, str):
            given = {"kind": "user", "key": given}
        # An invalid context is evaluated as an app's would be: every flag
        # answers the default with USER_NOT_SPECIFIED, and the answer says
        # why (an answer, not a refusal: the page's input, not the API's).
        context, ignored = read_context(given if isinstance(given, dict) else {})
        invalid = None
        if not isinstance(given, dict):
            invalid = "it must be an object or a key"
        elif not context.valid:
            invalid = context.error
        flags = dict(self._data.flags)  # (a change replaces a flag: this view holds)
        only = request.get("flag")
        if only is not None and not isinstance(only, str):
            return _error(400, '"flag" must be a flag\'s key')
        if self._console.evaluator is None:
            return _error(503, "this console has no evaluator")
        snapshot = await self._console.evaluator()
        results: list[str] = []
        pacer = Pacer()
        for key in [only] if only is not None else sorted(flags):
            if pacer.due():
                await pacer.pause()
            detail = snapshot.variation_detail(key, context, None)
            variation = detail.variation_index
            kind = detail.reason.get("kind")
            result = {
                "key": key,
                "label": visible(key),
                "value": cut(words.written(detail.value)),
                "variation": variation,
                "reason": words.reason_text(detail.reason, flags.get(key), variation),
                "reason_kind": kind if isinstance(kind, str) else None,
            }
            results.append(json.dumps(result))  # (written in the slices too)
        asked: dict[str, object]
        if invalid is not None:
            asked = {
                "kinds": [],
                "key": "",
                "error": f"the context is not valid: {invalid}",
            }
        else:
            key_text = (
                context.key if not context.multiple else context.fully_qualified_key
            )
            asked = {"kinds": list(context.kinds), "key": cut(key_text)}
        if ignored:
            # Read as LaunchDarkly reads it (the old user JSON), and said.
            shown = [cut(name) for name in ignored]
            asked["ignored"] = shown[:_IGNORED_SHOWN]
            asked["note"] = written_otherwise(shown)
        body = f'{{"context": {json.dumps(asked)}, "results": [{", ".join(results)}]}}'
        return Response(body, media_type="application/json")

    async def lens(self, http: Request) -> Response:
        """``POST /ui/api/lens``: a flag lens link, the app's URL with a token.

        Only for a request with the lens key (``Console.lens_refusal``): the
        console's token, which any local process can read in ``GET /ui/``,
        is not enough to sign with the app's secret. The link is logged
        (INFO, ``aioflags.lens``: its id, flags, lifetime and context key;
        never the token).
        """
        secret = self._console.lens_secret
        if secret is None:
            return _error(
                404, "no lens secret: start `aioflags serve --lens-secret-file F`"
            )
        refused = self._console.lens_refusal(http.headers)
        if refused is not None:
            return _error(403, refused)
        request = await _json_body(http)
        if not isinstance(request, dict):
            return _error(400, 'the body must be {"url": ..., "flags": [...], ...}')
        url = request.get("url")
        picked = request.get("flags")
        ttl = words.whole(request.get("ttl", 1800))
        context_key = request.get("context_key") or None
        trace = request.get("trace", False)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return _error(400, "the app's URL must begin with http:// or https://")
        if not isinstance(picked, list):
            return _error(400, "flags is a list of {key, variation}")
        if not picked and trace is not True:  # (a trace alone is a link, as the CLI's)
            return _error(400, "pick a flag and the variation it serves, or a trace")
        if ttl is None or not 60 <= ttl <= LENS_MAX_TTL:
            return _error(400, f"ttl is whole seconds from 60 to {LENS_MAX_TTL}")
        if context_key is not None and not isinstance(context_key, str):
            return _error(400, "the context key is a string")
        if not isinstance(trace, bool):
            return _error(400, "trace is true or false")
        flags: JSONObject = {}
        for item in picked:
            key = item.get("key") if isinstance(item, dict) else None
            index = (
                words.whole(item.get("variation")) if isinstance(item, dict) else None
            )
            flag = self._data.flags.get(key) if isinstance(key, str) else None
            if flag is None:
                return _error(404, f"no flag {key!r}")
            variations = flag.get("variations")
            values = variations if isinstance(variations, list) else []
            if index is None or not 0 <= index < len(values):
                return _error(
                    400, f"{key!r}: the variation is an index below {len(values)}"
                )
            flags[str(key)] = values[index]
        from aioflags._lens._token import MAX_TOKEN_BYTES, mint
        from aioflags._lens._web import with_token

        try:
            token = mint(secret, flags, ttl=ttl, context_key=context_key, trace=trace)
            link = with_token(url, token)
        except (ImportError, ValueError) as exc:
            return _error(400, str(exc))
        if len(token) > MAX_TOKEN_BYTES:  # (the app would refuse it)
            return _error(
                400,
                f"these flags make a token of {len(token)} bytes, over the"
                f" {MAX_TOKEN_BYTES} an app accepts: pick fewer flags or shorter values",
            )
        lens_logger.info(
            "aioflags console: made lens link %s for %s: %s, for %d s, context key %s%s",
            _claim(token, "jti"),
            cut(url.partition("?")[0]),
            ", ".join(f"{key}={cut(json.dumps(v))}" for key, v in flags.items()),
            ttl,
            "any" if context_key is None else repr(cut(context_key)),
            ", with a trace" if trace else "",
        )
        # What the link will not do in the app, said where it is made (row 123).
        warning = self._console.lens_warning(flags)
        return JSONResponse(
            {"link": link, "token": token, "ttl": ttl, "warning": warning}
        )

    async def release_guard(self, http: Request) -> Response:
        """``POST /ui/api/guards/<name>/release``: a guard's pin or alert released.

        Its row afterwards, with ``released`` (false: it had no decision to
        release).
        """
        name = http.path_params["name"]
        guards = self._console.guards
        if guards is None:
            return _error(404, "this console shows no guards")
        try:
            return JSONResponse(guards.release(name))
        except KeyError:
            return _error(404, f"no guard {name!r}")

    async def reset(self, http: Request) -> Response:
        """``POST /ui/api/reset``: a flag back to the file's."""
        key, _ = await _keyed_body(http)
        if key not in self._data.flags:
            return _error(404, f"no flag {key!r}")
        original = self._console.originals.pop(key, None)
        if original is None:
            return _error(409, f"{key!r} is as the file has it: nothing to reset")
        self._server.set_flag(key, original)  # a new version: SDKs take it
        return JSONResponse(flag_row(self._data.flags[key]))

    async def change(self, http: Request) -> Response:
        """``POST /ui/api/flag``: a flag switched on or off, or served one variation."""
        key, request = await _keyed_body(http)
        on = request.get("on")
        variation = request.get("variation")
        if on is None and variation is None:
            return _error(400, 'give "on" (true or false) or "variation" (an index)')
        if on is not None and not isinstance(on, bool):
            return _error(400, '"on" must be true or false')
        flag = self._data.flags.get(key)
        if flag is None:
            return _error(404, f"no flag {key!r}")
        # Its system says what a switch and one value for everyone change
        # (a flagd flag: its state, its default variant).
        system, definition = words.read_by(flag)
        index = None
        if variation is not None:
            count = len(system.values(flag, definition))
            index = words.whole(variation)
            if index is None or not 0 <= index < count:
                return _error(400, f'"variation" must be an index below {count}')
            asks = system.serve_one_asks(key, flag, definition)
            if asks is not None and request.get("confirm") is not True:
                return _error(409, asks)
        changed = system.changed(flag, definition, on, index)
        original = self._console.originals.setdefault(key, flag)
        self._server.set_flag(key, changed)
        now = self._data.flags[key]
        if same_content(original, now):  # changed back by hand: as the file has it
            self._console.originals.pop(key, None)
        return JSONResponse(flag_row(now, changed=key in self._console.originals))
