"""An FDv2 payload with objects this SDK cannot use: the rest applies (issue 77).

Each unusable object of a known kind is served as MALFORMED_FLAG (or, with
no key to name it by, skipped), named in one WARNING as the payload ends;
the good flags apply and the source stays VALID, by streaming and by
polling, against the real loopback FlagServer. (LaunchDarkly's SDK 9.20
refuses the whole payload; on a stream that was a reconnect loop.)
"""

from __future__ import annotations

import json
import logging

import pytest

from aioflags import (
    Client,
    Context,
    DataSystem,
    ProviderStatus,
    SourceState,
)
from aioflags._core._exceptions import ProtocolError
from aioflags._core._json import parse, parse_or_cut, shallow_decode
from aioflags._datasystem._payloads import parse_fdv2_poll_text
from aioflags.testing import Fault, FlagServer
from tests.flags import STRING_FLAG

USER = Context.create("user-1")
DEEP = "[" * 100_000 + "]" * 100_000  # past the JSON scanner's limit, on 3.10 to 3.13


def _data(key: object, version: object, obj: str) -> str:
    return (
        f'{{"kind":"flag","key":{json.dumps(key)},"version":{version},"object":{obj}}}'
    )


def _flag(key: str) -> str:
    return json.dumps({**STRING_FLAG, "key": key, "version": 1})


#: A flag whose prerequisite is one of the unusable.
NEEDS = json.dumps(
    {
        **STRING_FLAG,
        "key": "needs",
        "version": 1,
        "prerequisites": [{"key": "object-5", "variation": 0}],
    }
)
#: A flag whose rule matches a segment that is unusable.
IN_SEGMENT = json.dumps(
    {
        **STRING_FLAG,
        "key": "in-segment",
        "version": 1,
        "rules": [
            {
                "id": "r",
                "variation": 1,
                "clauses": [
                    {"attribute": "", "op": "segmentMatch", "values": ["segment-5"]}
                ],
            }
        ],
    }
)
#: (event, data) of one payload: two good flags around every unusable shape.
EVENTS: list[tuple[str, str]] = [
    (
        "server-intent",
        '{"payloads":[{"id":"p","target":1,"intentCode":"xfer-full"}]}',
    ),
    ("put-object", _data("f", 1, _flag("f"))),
    ("put-object", _data("object-5", 1, "5")),
    ("put-object", _data("object-null", 1, "null")),
    ("put-object", _data(5, 1, _flag("five"))),
    ("put-object", _data("version-text", '"1"', _flag("version-text"))),
    ("put-object", _data("version-1e400", "1e400", _flag("version-1e400"))),
    ("put-object", _data("deep", 1, '{"variations":' + DEEP + "}")),
    ("put-object", "5"),
    ("delete-object", '{"kind":"flag","key":"deleted","version":"x"}'),
    ("put-object", _data("g", 1, _flag("g"))),
    ("put-object", _data("needs", 1, NEEDS)),
    ("put-object", _data("in-segment", 1, IN_SEGMENT)),
    ("put-object", _data("segment-5", 1, "5").replace('"flag"', '"segment"')),
    ("payload-transferred", '{"state":"(p:p:1)","version":1}'),
]
SERVED_MALFORMED = [
    "object-5",
    "object-null",
    "version-text",
    "version-1e400",
    "deep",
    "deleted",
    "in-segment",  # (it reaches an unusable segment)
]


def _stream() -> str:
    return "".join(f"event: {event}\ndata: {data}\n\n" for event, data in EVENTS)


def _poll() -> bytes:
    # (and an element of `events` that is no event at all)
    events = [f'{{"event":"{e}","data":{d}}}' for e, d in EVENTS]
    events.insert(3, "7")
    return ('{"events":[' + ",".join(events) + "]}").encode()


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["streaming", "polling"])
async def test_the_rest_of_the_payload_applies_and_the_unusable_are_named_once(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aioflags")
    async with FlagServer({}) as server:
        if how == "streaming":
            server.fail("/sdk/stream", Fault(events=_stream(), hang_after_events=True))
            data_system = DataSystem.streaming()
        else:
            server.fail("/sdk/poll", Fault(body=_poll()))
            data_system = DataSystem.polling()
        config = server.config(
            data_system=data_system, ready_timeout=5.0, send_events=False
        )
        async with Client(config) as client:
            assert client.status is ProviderStatus.READY
            status = client.data_source_status
            assert status is not None
            assert status.state is SourceState.VALID and status.error is None
            for key in ("f", "g"):
                assert await client.variation(key, USER, "default") == "on"
            for key in SERVED_MALFORMED:
                detail = await client.variation_detail(key, USER, "default")
                assert detail.value == "default", key
                assert detail.reason == {
                    "kind": "ERROR",
                    "errorKind": "MALFORMED_FLAG",
                }, key
            needs = await client.variation_detail("needs", USER, "default")
            assert needs.value == "off"  # as for any malformed prerequisite
            assert needs.reason == {
                "kind": "PREREQUISITE_FAILED",
                "prerequisiteKey": "object-5",
            }
            five = await client.variation_detail("five", USER, "default")
            assert five.reason["errorKind"] == "FLAG_NOT_FOUND"  # (no key: skipped)
            path = "/sdk/stream" if how == "streaming" else "/sdk/poll"
            assert len(server.requests_to(path)) == 1  # applied: never asked again
    said = [r for r in caplog.records if r.name == "aioflags.datasource"]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert said[0].levelno == logging.WARNING
    message = said[0].getMessage()
    unusable = 10 if how == "polling" else 9
    assert message.startswith(f"Could not use {unusable} objects of the flag data: ")
    for named in (
        "flag 'object-5', whose put-object has no 'object' that is an object",
        "flag 'object-null', whose put-object",
        "a put-object of a flag whose key is not a string",
        "flag 'version-text', whose put-object has no integer 'version'",
    ):
        assert named in message
    assert "more" in message  # (the first five named, the rest counted)
    assert "MALFORMED_FLAG" in message and "The rest of the payload applies" in message


@pytest.mark.asyncio
@pytest.mark.parametrize("deep", ["payload-transferred", "server-intent", "other"])
async def test_a_deep_event_other_than_an_object_still_refuses_the_payload(
    deep: str,
) -> None:
    events = [f'{{"event":"{e}","data":{d}}}' for e, d in EVENTS[:2]]
    events.insert(
        0 if deep == "server-intent" else 2, f'{{"event":"{deep}","data":{DEEP}}}'
    )
    with pytest.raises(ProtocolError, match="nested too deeply"):
        await parse_fdv2_poll_text('{"events":[' + ",".join(events) + "]}")
    # After the payload's end, the rest is checked, not used: read shallowly.
    done = EVENTS[:2] + EVENTS[-1:]
    tail = [f'{{"event":"{e}","data":{d}}}' for e, d in done]
    tail.append(f'{{"event":"put-object","data":{DEEP}}}')
    change_set = await parse_fdv2_poll_text('{"events":[' + ",".join(tail) + "]}")
    assert [c.key for c in change_set.changes] == ["f"]


def test_shallow_decode_reads_the_top_and_cuts_the_depths() -> None:
    text = '{"key":"k","object":' + DEEP + ',"version":3} tail'
    value, end = shallow_decode(text)
    assert value["key"] == "k" and value["version"] == 3
    assert text[end:] == " tail"
    deepest = value["object"]
    for _ in range(30):  # (the object is the first level, the list the second)
        (deepest,) = deepest
    assert deepest == [None]  # 32 levels kept, the rest read as None
    assert parse_or_cut(text[:-5]) == (value, False)
    assert parse_or_cut(" [1, [2]] ") == ([1, [2]], True)  # what parse reads, whole
    assert shallow_decode("7, 8") == (7, 1)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"a":' + "[" * 100 + "}" * 100 + "}", "unmatched '}'"),
        ('{"a":' + "[" * 100, "does not end"),
        ('{"a" 1}', "Expecting ':'"),
        ('{"a":NaN}', "NaN is not valid JSON"),
    ],
)
def test_shallow_decode_refuses_what_is_not_json(text: str, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        shallow_decode(text)
    with pytest.raises(ProtocolError):
        parse(text)
    with pytest.raises(ProtocolError, match="extra data"):
        parse_or_cut(DEEP + " 2")  # (read shallowly, checked alike)
