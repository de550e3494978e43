"""Every OFREP answer of ``aioflags serve`` and ``OFREPApp`` as OFREP's own OpenAPI document says (issue 80).

The document is OFREP's (tests/ofrep_document.py: its version, commit and
license), with its two faults worked around here, visibly (:func:`patched`).
Two ways of asking, each against both targets, real servers on 127.0.0.1:

- schemathesis, property-based: requests the document allows and requests it
  does not (its coverage and fuzzing phases), each answer checked against the
  document's status codes, content types, headers and schemas;
- a sweep, answer by answer: every flag of :data:`FLAGS` (every shape an
  answer takes) and every documented bad input.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, unquote

import httpx
import pytest

if sys.version_info < (3, 11):  # (pyproject.toml: the tests group)
    pytest.skip("schemathesis 4 needs Python 3.11", allow_module_level=True)

import schemathesis
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.core.failures import Failure
from schemathesis.errors import FailureGroup
from schemathesis.openapi.checks import RejectedPositiveData

from aioflags import Client
from aioflags.ofrep import OFREPApp
from aioflags.testing import FlagServer
from tests.ofrep_document import BULK, DOCUMENT, SINGLE
from tests.processes import HTTP_GUARD
from tests.test_ofrep import CLIENT_SIDE, uvicorn_app

#: The flag ``OFREPApp``'s default ``expose="client-side"`` hides (it
#: answers as unknown); every other flag is marked for client-side SDKs.
#: ``serve`` exposes every flag.
_SERVER_ONLY: Final = "bool"


def _client_side(flags: dict[str, Any]) -> dict[str, Any]:
    return {k: f if k == _SERVER_ONLY else f | CLIENT_SIDE for k, f in flags.items()}


#: Every shape of answer: each JSON type of value, each reason, the code
#: default, a failed evaluation, and a flag hidden from client-side callers.
FLAGS: Final = _client_side(
    {
        "bool": {
            "on": True,
            "variations": [True, False],
            "fallthrough": {"variation": 0},
        },
        "string": {
            "on": True,
            "variations": ["red", "blue"],
            "fallthrough": {"variation": 0},
            "rules": [
                {
                    "id": "r",
                    "variation": 1,
                    "clauses": [
                        {
                            "attribute": "plan",
                            "op": "in",
                            "values": ["pro"],
                            "negate": False,
                        }
                    ],
                }
            ],
            "targets": [{"values": ["vip"], "variation": 1}],
        },
        "int": {"on": True, "variations": [10, 20], "fallthrough": {"variation": 1}},
        "float": {
            "on": True,
            "variations": [0.5, 1.5],
            "fallthrough": {"variation": 0},
        },
        "object": {
            "on": True,
            "variations": [{"a": [1]}],
            "fallthrough": {"variation": 0},
        },
        "array": {
            "on": True,
            "variations": [[1, "a"]],
            "fallthrough": {"variation": 0},
        },
        "null": {"on": True, "variations": [None], "fallthrough": {"variation": 0}},
        "split": {
            "on": True,
            "variations": [True, False],
            "fallthrough": {
                "rollout": {
                    "variations": [
                        {"variation": 0, "weight": 50000},
                        {"variation": 1, "weight": 50000},
                    ]
                }
            },
        },
        "off": {"on": False, "variations": [True, False], "offVariation": 1},
        "code-default": {"on": False, "variations": [True, False]},
        "prerequisite": {
            "on": True,
            "variations": ["a", "b"],
            "fallthrough": {"variation": 0},
            "offVariation": 1,
            "prerequisites": [{"key": "off", "variation": 0}],
        },
        "malformed": {
            "on": True,
            "variations": [True],
            "fallthrough": {"variation": 7},
        },
    }
)


# --------------------------------------------------------------- the document
def patched(document: dict[str, Any]) -> dict[str, Any]:
    """OFREP's document with its two faults worked around, and nothing else changed.

    Fault 1, the success ``value``: the document says an answer is exactly
    one (``oneOf``) of the boolean, string, integer, float, object and
    "code default" shapes. Every answer with a value matches two: the
    code-default shape (``{"type": "object", "properties": {}}``) matches
    any object, and an integer is a float too. So no answer with a value
    can pass; ``oneOf`` becomes ``anyOf``, which is what the document means.

    Fault 2, the ``reason`` enum: it lists ``STATIC``, ``TARGETING_MATCH``,
    ``SPLIT``, ``DISABLED`` and ``UNKNOWN``, and leaves out OpenFeature's
    ``DEFAULT``, which aioflags (and flagd) send when targeting chose
    nothing and the fallthrough served. "feat: Allow any reason"
    (open-feature/protocol ``a39476e``) had made this list ``examples``; a
    documentation change (``68ad3d3``, "update openapi.yaml with
    descriptions and examples") made it an ``enum`` again. ``DEFAULT`` is
    added.
    """
    fixed = copy.deepcopy(document)
    success = fixed["components"]["schemas"]["evaluationSuccess"]["allOf"]
    # Fault 1: the value's oneOf (every answer matches two of it) -> anyOf.
    success[1] = {"anyOf": success[1]["oneOf"]}
    # Fault 2: the reason enum, made from an examples list, lacks DEFAULT.
    success[0]["properties"]["reason"]["enum"].append("DEFAULT")
    return fixed


#: The checks run on every answer schemathesis gets: conformance to the
#: document, and ``positive_data_acceptance`` (a request the document allows
#: is not refused, but for the reasons :func:`filter_failure` lets through).
#: Left out: ``negative_data_rejection`` (``flagConfigEtag`` and
#: ``flagConfigLastModified`` are accepted and ignored whatever their form:
#: metadata for the server, ADR-0008) and ``ignored_auth`` (OFREP's
#: authentication is optional: "if supported by the flag management system").
CHECKS: Final = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
)
#: Examples per operation and target in the fuzzing phase (the coverage
#: phase adds its own, every run): a few in the quick run, the 300 of the
#: first probe (issue 80) in the full one.
QUICK_EXAMPLES: Final = 25
EXAMPLES: Final = 300
_SETTINGS: Final = settings(
    database=None,  # nothing written to .hypothesis/: every run is new
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _config(*checks: str) -> schemathesis.Config:
    """Schemathesis' configuration: these checks only; valid and invalid requests."""
    enabled = {name: {"enabled": True} for name in checks}
    return schemathesis.Config.from_dict(
        {"generation": {"mode": "all"}, "checks": {"enabled": False} | enabled}
    )


schema = schemathesis.openapi.from_dict(patched(DOCUMENT), config=_config(*CHECKS))


# ---------------------------------------------------------------- the targets
@contextlib.asynccontextmanager
async def _serving() -> AsyncIterator[dict[str, str]]:
    """``serve`` (its FlagServer) and ``OFREPApp`` under uvicorn: their base URLs.

    ``OFREPApp`` is served alone, not in a Starlette ``Mount``: a mount's
    path pattern stops at a newline as ``serve``'s did (issue 80), so a key
    with one would be answered by Starlette's router, not by ``OFREPApp``.
    """
    async with (
        FlagServer(FLAGS) as server,
        Client(server.config(send_events=False)) as client,
        uvicorn_app(OFREPApp(client)) as url,
    ):
        yield {"serve": server.url, "OFREPApp": url}


@pytest.fixture(scope="module")
def targets() -> Iterator[dict[str, str]]:
    """Both targets, served from a thread of their own (schemathesis blocks)."""
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(_serving()) as urls,
    ):
        yield urls


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One HTTP client for the sweep's many requests."""
    with httpx.Client(timeout=HTTP_GUARD) as client:
        yield client


@pytest.fixture(scope="module", params=["serve", "OFREPApp"])
def target(request: pytest.FixtureRequest, targets: dict[str, str]) -> tuple[str, str]:
    """One target: its name and base URL."""
    return request.param, targets[request.param]


# -------------------------------------------------------------- schemathesis
@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """Half the keys asked for are flags': the document names none of them."""
    flags = st.sampled_from(sorted(FLAGS)).map(lambda key: {"key": key})
    return st.one_of(st.just(path_parameters), flags)


#: Context names LaunchDarkly gives a meaning, and refuses a wrong value in
#: (``kind: 5``, ``anonymous: "yes"``...): the document allows any value.
_LAUNCHDARKLY_NAMES: Final = frozenset(
    {"kind", "key", "name", "anonymous", "privateAttributes"}
)


@schema.hook
def filter_failure(
    context: schemathesis.HookContext,
    failure: Failure,
    case: schemathesis.Case[Any],
    response: schemathesis.Response,
) -> bool:
    """Every failure counts but a request the document allows refused for a reason it lists.

    The document lets ``targetingKey`` be any string and any other name have
    any value; LaunchDarkly refuses an empty key, and a wrong value under a
    name it gives a meaning: ``400 TARGETING_KEY_MISSING`` or
    ``INVALID_CONTEXT``. A malformed flag fails whatever is asked: ``400
    PARSE_ERROR``. Any other refusal of a request the document allows is a
    failure (an attribute with an empty name was one: issue 80).
    """
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 400:
        return True
    body = case.body if isinstance(case.body, dict) else {}
    sent = body.get("context")
    if not isinstance(sent, dict):
        return True
    code = response.json().get("errorCode")
    if code == "PARSE_ERROR":
        return case.path_parameters != {"key": "malformed"}
    if code == "TARGETING_KEY_MISSING":
        return sent.get("targetingKey") != ""
    return not (code == "INVALID_CONTEXT" and _LAUNCHDARKLY_NAMES.intersection(sent))


@schema.parametrize()
@settings(_SETTINGS, max_examples=QUICK_EXAMPLES)
def test_every_answer_conforms_to_the_document(
    case: schemathesis.Case[Any], target: tuple[str, str]
) -> None:
    case.call_and_validate(base_url=target[1])


@pytest.mark.slow
@pytest.mark.no_cover
@schema.parametrize()
@settings(_SETTINGS, max_examples=EXAMPLES)
def test_every_answer_conforms_to_the_document_at_length(
    case: schemathesis.Case[Any], target: tuple[str, str]
) -> None:
    case.call_and_validate(base_url=target[1])


# ----------------------------------------------------------------- the sweep
_ONE: Final = "/ofrep/v1/evaluate/flags/"
_ALL: Final = "/ofrep/v1/evaluate/flags"
_JSON: Final = ("content-type", "application/json")
_USER: Final = {"targetingKey": "u1"}


@dataclass(frozen=True)
class Ask:
    """One request of the sweep, and the status it is answered with."""

    path: str  # under the base URL, as sent (a key percent-encoded)
    body: bytes
    status: int
    headers: tuple[tuple[str, str], ...] = (_JSON,)

    @property
    def key(self) -> str | None:
        """The flag key the path names (None: the bulk operation)."""
        return unquote(self.path.removeprefix(_ONE)) if _ONE in self.path else None


def _json(context: object) -> bytes:
    return json.dumps({"context": context}).encode()


#: Every flag, for a context that falls through, one a rule matches and one
#: a target names.
_EVERY_FLAG: Final = {
    f"{key} for {who}": Ask(
        _ONE + key, _json(context), 400 if key == "malformed" else 200
    )
    for key in FLAGS
    for who, context in [
        ("u1", _USER),
        ("a pro", {"targetingKey": "u2", "plan": "pro"}),
        ("vip", {"targetingKey": "vip"}),
    ]
} | {
    f"all flags for {who}": Ask(_ALL, _json(context), 200)
    for who, context in [
        ("u1", _USER),
        ("a pro", {"targetingKey": "u2", "plan": "pro"}),
    ]
}
#: Bodies refused, with 400 and a failure body: what docs/ofrep.md names.
_REFUSED: Final = {
    "a body that is not JSON": b"{not json",
    "a body that is not an object": b"[1]",
    "no body": b"",
    "no context": b"{}",
    "a context that is not an object": _json(3),
    "an empty context": _json({}),
    "a targetingKey not a string": _json({"targetingKey": 5}),
    "an empty targetingKey": _json({"targetingKey": ""}),
    "a kind LaunchDarkly refuses": _json({"targetingKey": "u", "kind": "kind"}),
    "a multi-kind context of no kinds": _json({"kind": "multi"}),
    "privateAttributes not a list": _json(
        {"targetingKey": "u", "privateAttributes": "e"}
    ),
    "a body over 64 KiB": b"[" * 100_000,
}
#: Requests evaluated although not as the document has them.
_TAKEN: Final = {
    # Was 400 INVALID_CONTEXT (issue 80).
    "an attribute with an empty name": (_json({"": None, "targetingKey": "0"}), _JSON),
    "a body sent as text/plain": (_json(_USER), ("content-type", "text/plain")),
    "a body with no content type": (_json(_USER), None),
}
#: Every bad input the document or docs/ofrep.md names, to each operation.
_BAD: Final = (
    {
        "an unknown flag": Ask(_ONE + "nope", _json(_USER), 404),
        # serve's was not an OFREP answer (issue 80).
        "a key with a newline": Ask(_ONE + "a%0Ab", _json(_USER), 404),
        "a key ending in a newline": Ask(_ONE + "a%0A", _json(_USER), 404),
        "a key with a slash": Ask(_ONE + "a%2Fb", _json(_USER), 404),
        "a key of other scripts": Ask(_ONE + quote("ключ 鍵"), _json(_USER), 404),
        "metadata of an event in the query (all flags)": Ask(
            _ALL + "?flagConfigEtag=%22x%22&flagConfigLastModified=-1",
            _json(_USER),
            200,
        ),
        "an If-None-Match that matches nothing (all flags)": Ask(
            _ALL, _json(_USER), 200, (_JSON, ("if-none-match", '"nothing"'))
        ),
    }
    | {
        f"{what} ({name})": Ask(path, body, 400)
        for name, path in [("one flag", _ONE + "string"), ("all flags", _ALL)]
        for what, body in _REFUSED.items()
    }
    | {
        f"{what} ({name})": Ask(path, body, 200, (header,) if header else ())
        for name, path in [("one flag", _ONE + "string"), ("all flags", _ALL)]
        for what, (body, header) in _TAKEN.items()
    }
)
SWEEP: Final = _EVERY_FLAG | _BAD


def _validate(response: httpx.Response, ask: Ask) -> None:
    """The answer as the document says, checked by schemathesis' conformance checks."""
    key = ask.key
    operation = schema[SINGLE if key is not None else BULK]["POST"]
    case = operation.Case(path_parameters={"key": key} if key is not None else None)
    case.validate_response(response)


@pytest.mark.parametrize("ask", SWEEP.values(), ids=SWEEP.keys())
def test_the_sweep_every_flag_and_every_bad_input(
    ask: Ask, target: tuple[str, str], http: httpx.Client
) -> None:
    name, base_url = target
    answer = http.post(base_url + ask.path, content=ask.body, headers=ask.headers)
    # OFREPApp's default expose hides the flag not marked for client-side SDKs.
    hidden = name == "OFREPApp" and ask.key == _SERVER_ONLY
    assert answer.status_code == (404 if hidden else ask.status), answer.text
    _validate(answer, ask)
    if ask.key is not None and answer.status_code != 200:
        assert answer.json()["key"] == ask.key  # (the document requires it)


def test_a_304_conforms(target: tuple[str, str], http: httpx.Client) -> None:
    _, base_url = target
    first = http.post(base_url + _ALL, content=_json(_USER))
    tag = first.headers["etag"]
    again = http.post(
        base_url + _ALL, content=_json(_USER), headers={"if-none-match": tag}
    )
    assert (again.status_code, again.content) == (304, b"")
    _validate(again, Ask(_ALL, b"", 304))


# ----------------------------------------------------- the document's faults
def _conforms(document: dict[str, Any], answer: dict[str, Any]) -> bool:
    """Whether ``document`` takes ``answer`` as a single evaluation's 200."""
    checked = schemathesis.openapi.from_dict(
        document, config=_config("response_schema_conformance")
    )
    request = httpx.Request("POST", "http://127.0.0.1/ofrep/v1/evaluate/flags/f")
    response = httpx.Response(200, json=answer, request=request)
    response.elapsed = datetime.timedelta(0)  # (as if received)
    try:
        checked[SINGLE]["POST"].Case(path_parameters={"key": "f"}).validate_response(
            response
        )
    except FailureGroup:
        return False
    return True


@pytest.mark.parametrize(
    "answer",
    [
        {"key": "f", "reason": "STATIC", "value": True, "variant": "0"},
        {"key": "f", "reason": "TARGETING_MATCH", "value": 3, "variant": "1"},
        {"key": "f", "reason": "DEFAULT", "value": "x", "variant": "0"},
    ],
    ids=["a boolean value", "an integer value", "the DEFAULT reason"],
)
def test_the_document_s_two_faults_are_real_and_only_they_are_patched(
    answer: dict[str, Any],
) -> None:
    # Answers the document means to allow: as published it refuses each;
    # patched it takes them, and still refuses what it should.
    assert not _conforms(DOCUMENT, answer)
    assert _conforms(patched(DOCUMENT), answer)
    for wrong in [
        {**answer, "reason": "BECAUSE"},
        {k: v for k, v in answer.items() if k != "key"},
        {**answer, "metadata": {"list": [1]}},
    ]:
        assert not _conforms(patched(DOCUMENT), wrong)
