"""The flag lens against hostile input: tokens, cookies, query strings, traces.

Whatever a request carries, the lens never fails it (no exception reaches
the server: never a 500), never redirects off the host, never writes a
header that is not visible ASCII, and keeps what it remembers bounded.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt as pyjwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aioflags
from aioflags._core._clock import wall_ms
from aioflags._lens import _lens as lens_runtime
from aioflags._lens._token import Claims, Refusal, verify
from aioflags.lens import LensConfig, LensMiddleware, scope
from aioflags.testing import FlagData

SECRET = b"hostile-lens-secret-0123456789abcdefgh"
USER = aioflags.Context.create("user-42")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(claims: Any, header: Any = None) -> str:
    """A token with these claims (any JSON, or not), signed with SECRET."""
    import hashlib
    import hmac

    head = _b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(claims if isinstance(claims, bytes) else json.dumps(claims).encode())
    signature = hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.no_cover
@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=600) | st.binary(max_size=600).map(lambda b: b.decode("latin-1"))
)
def test_verify_answers_anything_with_claims_or_a_refusal(token: str) -> None:
    verdict = verify(token, [SECRET], 3600)
    assert isinstance(verdict, Refusal)  # (nothing random is signed)
    assert verdict.cause in Refusal.CAUSES


@pytest.mark.no_cover
@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["aud", "exp", "iat", "jti", "sub", "flags", "trace", "nbf"]),
        json_values,
    )
    | json_values
)
def test_signed_claims_of_any_shape_are_checked_not_trusted(claims: Any) -> None:
    verdict = verify(signed(claims), [SECRET], 3600)
    if isinstance(verdict, Claims):
        assert isinstance(claims, dict)
        assert claims["aud"] == "aioflags-lens" or "aioflags-lens" in claims["aud"]
        assert isinstance(verdict.trace, bool)
        assert verdict.sub is None or isinstance(verdict.sub, str)
    else:
        assert verdict.cause in Refusal.CAUSES


def test_signed_garbage_and_tricks_are_refused_by_cause() -> None:
    now = wall_ms() // 1000
    good = {"aud": "aioflags-lens", "iat": now, "exp": now + 60, "flags": {}}
    cases = {
        "not JSON": (signed(b"\xff\xfe not json"), "malformed"),
        "an array": (signed([1, 2]), "malformed"),
        "flags a list": (signed({**good, "flags": ["a"]}), "malformed"),
        "exp a string": (signed({**good, "exp": "tomorrow"}), "malformed"),
        "exp a bool": (signed({**good, "exp": True}), "malformed"),
        "exp infinite": (signed({**good, "exp": 1e309}), "malformed"),
        "exp NaN": (signed({**good, "exp": float("nan")}), "malformed"),
        "iat NaN": (signed({**good, "iat": float("nan")}), "malformed"),
        "trace a string": (signed({**good, "trace": "yes"}), "malformed"),
        "sub a number": (signed({**good, "sub": 42}), "malformed"),
        "jti huge": (signed({**good, "jti": "j" * 500}), "malformed"),
        "aud missing": (
            signed({k: v for k, v in good.items() if k != "aud"}),
            "audience",
        ),
        "aud a number": (signed({**good, "aud": 7}), "audience"),
        "exp missing": (
            signed({k: v for k, v in good.items() if k != "exp"}),
            "malformed",
        ),
        "from the future": (
            signed({**good, "iat": now + 3600, "exp": now + 3660}),
            "expired",
        ),
        "alg none": (signed(good, {"alg": "none"}), "algorithm"),
        "alg HS256 lowercase": (signed(good, {"alg": "hs256"}), "algorithm"),
        "header a list": (f"{_b64(b'[1]')}.{_b64(b'{}')}.", "malformed"),
        "kid path": (signed(good, {"alg": "HS256", "kid": "../../etc/passwd"}), None),
        # issue 77: a cookie is set to a token as it is written, and a link
        # is redeemed once per token: one token, one spelling.
        "padded": (signed(good) + "=", "malformed"),
        "a cookie attribute": (signed(good) + ";Domain=evil.example", "malformed"),
        "a line break": (signed(good)[:-4] + "\r\n" + signed(good)[-4:], "malformed"),
    }
    for name, (token, cause) in cases.items():
        verdict = verify(token, [SECRET], 3600)
        if cause is None:
            assert isinstance(verdict, Claims), name  # (kid is not used)
        else:
            assert isinstance(verdict, Refusal), name
            assert verdict.cause == cause, (name, verdict)


async def _call(
    middleware: LensMiddleware,
    path: bytes,
    query: bytes,
    headers: list[Any],
    method: str = "GET",
    body: bytes = b"",
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body}

    async def send(message: Any) -> None:
        sent.append(message)

    scope_ = {
        "type": "http",
        "method": method,
        "scheme": "http",
        "path": path.decode("latin-1"),
        "raw_path": path,
        "query_string": query,
        "headers": headers,
    }
    await middleware(scope_, receive, send)
    return sent


#: Stands for a fresh validly signed form (a link is redeemed once).
_VALID_FORM = b"<a valid form>"


@pytest.mark.no_cover
@pytest.mark.asyncio
async def test_any_request_gets_an_answer_never_a_crash_or_a_foreign_redirect() -> None:
    flags = FlagData()
    flags.update(flags.flag("a").variations("x", "y").fallthrough("x"))
    lens = LensConfig(secrets=[SECRET], allow=["*"])
    config = aioflags.Config(data_system=flags.data_system(), lens=lens)
    async with aioflags.Client(config) as client:

        async def app(scope_: Any, receive: Any, send: Any) -> None:
            value = await client.variation("a", USER, None)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": str(value).encode()})

        middleware = LensMiddleware(app, client=client)

        def valid(jti: str = "j") -> str:
            return signed(
                {
                    "aud": "aioflags-lens",
                    "iat": wall_ms() // 1000,
                    "exp": wall_ms() // 1000 + 60,
                    "flags": {"a": "y"},
                    "trace": True,
                    "jti": jti,
                }
            )

        text = st.binary(max_size=300)

        @settings(
            max_examples=300,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(
            path=st.binary(min_size=1, max_size=60).map(lambda b: b"/" + b),
            query=text
            | st.builds(lambda b: b"aioflags_lens=" + b, text)
            | st.builds(lambda b: b + b"&aioflags_lens", text),
            header=text | st.just(valid().encode()),
            cookie=text | st.just(b"aioflags_lens=" + valid().encode()),
            method=st.sampled_from(["GET", "HEAD", "POST", "PUT"]),
            body=text | st.builds(lambda b: b"token=" + b, text) | st.just(_VALID_FORM),
            origin=st.none() | text,
        )
        def check(
            path: bytes,
            query: bytes,
            header: bytes,
            cookie: bytes,
            method: str,
            body: bytes,
            origin: bytes | None,
        ) -> None:
            # (drawn here, sent below: the middleware runs on this test's loop)
            messages.append((path, query, header, cookie, method, body, origin))

        messages: list[tuple[bytes, bytes, bytes, bytes, str, bytes, bytes | None]] = []
        check()
        # Beside what was drawn, one of each answer the end checks for (a
        # draw of each is likely, never certain).
        messages += [
            (b"/p", b"q=1&aioflags_lens", b"", b"", "POST", _VALID_FORM, None),
            (b"/p", b"q=1&aioflags_lens", b"", b"", "POST", b"token=bad", None),
            (b"/p", b"q=1&aioflags_lens", b"", b"", "GET", b"", None),
            (b"/p", b"", valid().encode(), b"", "GET", b"", None),
            (b"/p", b"", b"", b"", "GET", b"", None),
        ]
        seen: set[tuple[int, bytes]] = set()
        for n, (path, query, header, cookie, method, body, origin) in enumerate(
            messages
        ):
            if body == _VALID_FORM:
                body = b"token=" + valid(f"j{n}").encode()
            headers = [(b"x-aioflags-lens", header), (b"cookie", cookie)]
            if origin is not None:
                headers.append((b"origin", origin))
            sent = await _call(middleware, path, query, headers, method, body)
            start = sent[0]
            status = start["status"]
            seen.add((status, b"" if status != 200 else sent[1]["body"][:15]))
            assert start["type"] == "http.response.start"
            assert status in (200, 303, 400, 403, 409, 413), status
            for name, value in start["headers"]:
                assert all(0x20 <= c < 0x7F for c in value), (name, value)
            if status == 303:
                location = dict(start["headers"])[b"location"].decode()
                assert location.startswith("/") and not location.startswith(
                    ("//", "/\\")
                )
                assert "aioflags_lens" not in location
        # The cases ran: links redeemed and refused, their pages, plain
        # answers, and overrides through the header or the cookie.
        assert {
            (303, b""),
            (403, b""),
            (200, b"<!doctype html>"),
            (200, b"x"),
            (200, b"y"),
        } <= seen
        assert client._lens is not None and client._lens.active == 0
        assert len(lens_runtime._told) <= lens_runtime._MAX_TOLD


@pytest.mark.asyncio
async def test_huge_values_and_many_flags_keep_the_trace_within_8_kib() -> None:
    flags = FlagData()
    big = "v" * 20_000
    flags.update(
        flags.flag("huge").variations(big, "small").fallthrough(big),
        *(flags.flag(f"f{i}").boolean().fallthrough(True) for i in range(50)),
    )
    lens = LensConfig(secrets=[SECRET], allow=["*"])
    config = aioflags.Config(data_system=flags.data_system(), lens=lens)
    now = wall_ms() // 1000
    token = pyjwt.encode(
        {"aud": "aioflags-lens", "iat": now, "exp": now + 60, "trace": True},
        SECRET,
        algorithm="HS256",
    )
    async with aioflags.Client(config) as client:
        with scope(client, token) as lensed:
            for i in range(10):
                await client.variation(f"f{i}", USER, None)
            await client.variation("huge", USER, None)  # one entry over 8 KiB
            for i in range(10, 50):
                await client.variation(f"f{i}", USER, None)
            trace = lensed.trace()
    assert trace is not None and len(trace) <= 8192
    assert trace.endswith("; ...+41 more")  # the huge one and all after it
    assert trace.count("(FALLTHROUGH)") == 10
