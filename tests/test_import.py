"""What `import aioflags` loads, and where the rest is loaded: at start, never at evaluation.

Each check runs in a fresh interpreter (the test process has imported
everything already) and looks at ``sys.modules``; no timing is asserted
(docs/benchmarks.md has the figures, benchmarks/bench_import.py measures them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import anyio
import pytest

import aioflags
from aioflags.testing import FlagServer
from tests.flags import match_flag
from tests.modules import ROOT, load

#: Imported only once a client starts (or a rarely used module is used),
#: never by ``import aioflags``: what they cost is the bulk of what the
#: import used to take.
NOT_AT_IMPORT = (
    # HTTP: httpx drags in click, pygments, email, http, urllib.request...
    "httpx",
    "httpx_sse",
    "h11",
    "ssl",
    "_ssl",
    "socket",
    "http.client",
    "urllib.request",
    "email",
    # identifiers and digests: OpenSSL's libcrypto, platform
    "hashlib",
    "_hashlib",
    "hmac",
    "uuid",
    "platform",
    "base64",
    "gzip",
    # generated class machinery, and anyio (which parses its own source
    # with ast and inspect when imported): they load when a client starts
    "dataclasses",
    "anyio",
    "inspect",
    "ast",
    # what a plain user of aioflags.Client never needs at import
    "aioflags.sources",
    "aioflags.stores",
    "aioflags.migrations",
    "aioflags._client._migrator",
    "aioflags._evaluation._migration",
    "aioflags._datasystem._sources",
    # flag files' readers, linters and schemas: loaded when a file is met
    # (a flag system's document format, issue 96)
    "importlib.resources",
    "aioflags._datasystem._stores._base",
    "aioflags._datasystem._stores._redis",
    "aioflags._datasystem._stores._writer",
    "aioflags._datasystem._stores._sources",
    "aioflags._analytics",
    "aioflags._client._http",
    "aioflags._client._transport",
    "aioflags._datasystem._store",
    "aioflags._datasystem._supervisor",
    "aioflags._client._status",
    "aioflags._datasystem._payloads",
    "aioflags._service._server",
    "aioflags._testing._testdata",
    "aioflags._datasystem._sources._files",
    "aioflags.testing",
    "aioflags.otel",
    "aioflags.openfeature",
    "aioflags._client._ofanswers",
    "aioflags.blocking",
    "redis",
    # the regular-expression machinery: loaded by the first `matches`
    # pattern of the data (at ingest, on a worker thread), never by a start
    # whose flags have none (issue 49)
    "aioflags._evaluation._regex",
    "aioflags._evaluation._re2syntax",
    "re2",
    # `aioflags cleanup`'s codemod: libcst, only when the command runs
    "aioflags._lifecycle._cleanup",
    "libcst",
)


def _child(code: str, *args: str) -> Any:
    """Run ``code`` in a fresh interpreter; what it prints last, as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _loaded(names: list[str], modules: list[str]) -> list[str]:
    """The names in ``names`` that are ``modules`` or a package of them."""
    return sorted(
        {n for n in names for m in modules if m == n or m.startswith(n + ".")}
    )


def test_import_aioflags_loads_none_of_the_heavy_modules() -> None:
    got = _child(
        """
        import sys
        before = set(sys.modules)
        import aioflags
        import json
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    assert "aioflags._client._client" in got  # the check sees what the import loads
    assert _loaded(list(NOT_AT_IMPORT), got) == []


@pytest.mark.slow
def test_the_lazy_names_are_still_there_for_users_and_tools() -> None:
    got = _child(
        """
        import sys, json
        import aioflags
        listed = "sources" in dir(aioflags) and "stores" in dir(aioflags)
        loaded = "aioflags.sources" in sys.modules
        sources = aioflags.sources.__name__
        stores = aioflags.stores.StoreMode.__module__
        print(json.dumps([listed, loaded, sources, stores]))
        """
    )
    assert got == [True, False, "aioflags.sources", "aioflags.stores"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        aioflags.nope  # type: ignore[attr-defined]  # noqa: B018
    assert all(hasattr(aioflags, name) for name in aioflags.__all__)


def test_import_aioflags_compiles_no_operator_regex() -> None:
    # The date, semantic-version and surrogate patterns are compiled on their
    # first use (5.5 M instructions of `import aioflags` they were), and they
    # still answer once used.
    got = _child(
        """
        import json
        import aioflags
        from aioflags._evaluation import _operators, _regex
        at_import = [
            _operators._compiled.cache_info().currsize,
            _regex._surrogates.cache_info().currsize,
        ]
        used = [
            _operators.parse_semver("2.1.0") is not None,
            _operators.parse_instant("2024-01-01T00:00:00Z") is not None,
            _regex._has_surrogate("a\\ud800"),
            _operators._compiled.cache_info().currsize,
            _regex._surrogates.cache_info().currsize,
        ]
        print(json.dumps([at_import, used]))
        """
    )
    assert got == [[0, 0], [True, True, True, 2, 1]]


def test_the_sha1_of_bucketing_is_hashlibs() -> None:
    import hashlib

    from aioflags._evaluation import _codegen

    sha1 = vars(_codegen)["_sha1"]  # what bucketing hashes with
    for text in ("", "flag.salt.user-1", "é" * 100):
        data = text.encode()
        assert sha1(data).digest() == hashlib.sha1(data).digest()


# The child starts a client (events on) against the parent's flag server,
# then evaluates every flag of a corpus with every kind of rule, operator,
# segment, rollout and prerequisite, plus an unbounded segment, through
# every evaluation method. Flags are compiled on their first evaluation, so
# this also covers what compiling needs.
_START_THEN_EVALUATE = """
import json, sys
import anyio
import aioflags

def rest(before):
    return sorted(set(sys.modules) - before)

async def main(url, keys):
    at_import = set(sys.modules)
    config = aioflags.Config(
        "sdk-key", base_uri=url, stream_uri=url, events_uri=url, ready_timeout=10
    )
    contexts = [
        aioflags.Context.from_dict(
            {"kind": "user", "key": f"user-{i}", "email": f"{c}{i}@example.com",
             "name": "Alice", "country": "de", "age": 20 + i,
             "appVersion": "2.2.1", "createdAt": 1600000000000 + i}
        )
        for i, c in enumerate("abcxyz")
    ]
    contexts.append(aioflags.Context.create("bare"))  # no rule matches: rollouts
    async with aioflags.Client(config) as client:
        ready = client.status.name
        at_ready = set(sys.modules)
        for context in contexts:
            for key in keys:
                await client.variation(key, context, False)
                await client.variation_detail(key, context, False)
                client.snapshot().variation(key, context, False)
            await client.all_flags_state(context, with_reasons=True)
        await client.bool_variation("missing", contexts[0], False)
        evaluated = rest(at_ready)
    print(json.dumps([ready, rest(at_import), evaluated, sorted(sys.modules)]))

anyio.run(main, sys.argv[1], json.loads(sys.argv[2]))
"""


@pytest.mark.slow
@pytest.mark.asyncio
async def test_what_import_leaves_out_loads_before_ready_never_at_evaluation() -> None:
    corpus = load("benchmarks/corpus.py", "import_corpus").make_corpus(60, 8)
    flags = corpus["flags"]
    segments = dict(corpus["segments"])
    segments["big"] = {"unbounded": True, "generation": 1, "salt": "big"}
    flags["in-big"] = match_flag(
        {"attribute": "", "op": "segmentMatch", "values": ["big"]},
        key="in-big",
        rule_id="big",
    )
    rollout = {
        "variations": [
            {"variation": 0, "weight": 50000},
            {"variation": 1, "weight": 50000},
        ]
    }
    variants: dict[str, dict[str, Any]] = {
        "rollout": {"fallthrough": {"rollout": rollout}},
        "experiment": {"fallthrough": {"rollout": {**rollout, "kind": "experiment"}}},
        "rule-rollout": {
            "rules": [
                {
                    "id": "everyone",
                    "rollout": rollout,
                    "clauses": [
                        {"attribute": "key", "op": "startsWith", "values": [""]}
                    ],
                }
            ]
        },
    }
    for key, extra in variants.items():
        flags[key] = {
            "on": True,
            "variations": [True, False],
            "offVariation": 1,
            "fallthrough": {"variation": 1},
            **extra,
        }
    async with FlagServer(flags, segments) as server:
        out = await anyio.run_process(
            [
                sys.executable,
                "-c",
                _START_THEN_EVALUATE,
                server.url,
                json.dumps(sorted(flags)),
            ],
            cwd=ROOT,
            check=False,
        )
    assert out.returncode == 0, out.stderr.decode()
    ready, started, evaluated, _ = json.loads(out.stdout.decode().splitlines()[-1])
    assert ready == "READY"
    # Loaded by the start, before READY: HTTP, the sources, the store...
    assert {
        "httpx",
        "httpx_sse",
        "aioflags._datasystem._supervisor",
        "aioflags._datasystem._store",
    } <= set(started)
    # ...and nothing at all by the evaluations (nor by compiling the flags).
    assert evaluated == []
    # The corpus has `matches` clauses: their patterns loaded the regex
    # machinery at ingest, before READY.
    assert "aioflags._evaluation._regex" in started
    # Without a persistent store, what persistent stores share never loads;
    # nor, without big segments either, the gate's steps.
    assert "aioflags._datasystem._stores._base" not in started + evaluated
    assert not {
        "aioflags._datasystem._stores._gate",
        "aioflags._datasystem._stores._lookups",
    } & set(started + evaluated)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_flags_without_matches_clauses_never_load_the_regex_machinery() -> None:
    # Issue 49: a start imports what its flags need. Every rule kind but
    # `matches`, compiled and evaluated through every method: neither the
    # start nor the evaluations load _regex.py or _re2syntax.py.
    corpus = load("benchmarks/corpus.py", "import_corpus").make_corpus(60, 8)
    flags, segments = corpus["flags"], corpus["segments"]
    for item in (*flags.values(), *segments.values()):
        for rule in item["rules"]:
            rule["clauses"] = [c for c in rule["clauses"] if c["op"] != "matches"]
    async with FlagServer(flags, segments) as server:
        out = await anyio.run_process(
            [
                sys.executable,
                "-c",
                _START_THEN_EVALUATE,
                server.url,
                json.dumps(sorted(flags)),
            ],
            cwd=ROOT,
            check=False,
        )
    assert out.returncode == 0, out.stderr.decode()
    ready, started, _, every = json.loads(out.stdout.decode().splitlines()[-1])
    assert ready == "READY"
    assert "aioflags._datasystem._store" in started  # (the check sees the start)
    regex = ["aioflags._evaluation._regex", "aioflags._evaluation._re2syntax", "re2"]
    assert _loaded(regex, every) == []  # at import, at start, at evaluation


def test_the_event_loop_never_imports_the_regex_machinery_for_a_change_set() -> None:
    # The store first asks, on the loop, whether a change set's patterns are
    # all held already; before any pattern is compiled none is, and the
    # answer ("compile them", on a worker thread) must not import _regex.py
    # there: the worker thread does, as it compiles.
    got = _child(
        """
        import json, sys
        from aioflags._datasystem._patterns import compile_patterns, held_patterns
        from aioflags.sources import Change, ChangeKind, ObjectKind
        clause = {"attribute": "email", "op": "matches", "values": ["@x\\\\.org$"]}
        flag = {"key": "f", "version": 1, "rules": [{"clauses": [clause]}]}
        put = Change(action=ChangeKind.PUT, kind=ObjectKind.FLAG, key="f", version=1, obj=flag)
        items = [put]
        asked = held_patterns(items)
        on_the_loop = "aioflags._evaluation._regex" in sys.modules
        compiled = compile_patterns(items)
        print(json.dumps([asked, on_the_loop, sorted(compiled),
                          held_patterns(items) is not None]))
        """
    )
    assert got == [None, False, ["ff"], True]
