"""Run flagd's testbed Gherkin suites through aioflags' OpenFeature provider.

flagd's testbed (https://github.com/open-feature/flagd-testbed) holds the
Gherkin suites every flagd provider is held to, and the flag files they
evaluate. This runner reads them from where the testbed is checked out
(nothing of it is copied into this repository) and runs them through
:class:`aioflags.openfeature.AioflagsProvider`, as a conformance runner
would::

    python contract-tests/flagd_testbed.py --testbed /tmp/flagd-testbed \\
        [--suite GLOB]... [--fractional 3,2] [--json PATH] [--verbose]

- The provider suites (``gherkin/*.feature``): ``@file`` scenarios run with
  ``DataSystem.file`` over the document the testbed's launchpad serves by
  default (``flags/*.json`` but ``selector-*``, deep-merged as the launchpad
  merges them into ``allFlags.json``; written to a temporary directory), or
  the flag file a ``selector`` option names (as python-sdk-contrib's file-mode
  end-to-end tests map it). ``@in-process`` scenarios run with
  ``DataSystem.flagd`` against ``aioflags.testing.FlagdServer`` on loopback,
  serving what the launchpad's configuration for the provider serves; where
  aioflags has neither (or the ``flagd`` extra is missing) they are skipped
  with that reason.
- The evaluator suites (``evaluator/gherkin/*.feature``): "an evaluator" is
  aioflags over ``evaluator/flags/testkit-flags.json``.
- Tags: ``@fractional-v1`` is skipped (aioflags does not offer that
  bucketing), ``@fractional-v2`` runs with ``DataSystem.file(...,
  fractional=2)`` (``--fractional 3`` leaves it out), ``@rpc`` alone,
  ``@targetURI`` and ``@caching`` are skipped (another resolver, or Docker's
  envoy); ``gherkin/config.feature`` (the reference provider's own option
  object) is not part of the acceptance. Every skip names its reason.

One provider serves every scenario of a flag source that does not change
its state; a scenario that does (a lost connection, a modified flag) gets a
provider and a copy of the files of its own. The runner owns OpenFeature's
global registry while it runs and clears it at the end.

Exit status: 0 when no scenario failed, 1 otherwise (2: bad arguments).
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import itertools
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.provider import ProviderStatus

from aioflags import Config, DataSystem
from aioflags.openfeature import AioflagsProvider

if TYPE_CHECKING:
    from openfeature.client import OpenFeatureClient
    from openfeature.flag_evaluation import FlagEvaluationDetails

# --------------------------------------------------------------- the suites
#: Where the suites are, relative to the testbed: provider suites, evaluator suites.
PROVIDER_SUITES: Final = "gherkin"
EVALUATOR_SUITES: Final = "evaluator/gherkin"
#: The evaluator suites' flags.
TESTKIT_FLAGS: Final = "evaluator/flags/testkit-flags.json"

FILE, IN_PROCESS, EVALUATOR = "file", "in-process", "evaluator"

#: Skip reasons (a case's reason is one of these, or says which provider).
CONFIG_SUITE: Final = (
    "config.feature checks the reference provider's own option object: "
    "not part of the acceptance"
)
RPC_ONLY: Final = "@rpc only: remote evaluation (another resolver)"
TARGET_URI: Final = "@targetURI: envoy name resolution (Docker)"
CACHING: Final = "@caching: the RPC resolver's cache (another resolver)"
FRACTIONAL_V1: Final = (
    "@fractional-v1: the v1 bucketing is not offered (contract, Settled details)"
)
FRACTIONAL_V2_OFF: Final = "@fractional-v2: not selected (--fractional)"
DEPRECATED: Final = (
    "@deprecated: superseded by @no-default-variant, whose expectations "
    "(reason DEFAULT, no error) it contradicts"
)
NOT_TAGGED: Final = "not tagged @file or @in-process"

#: What a file-mode provider cannot be: each needs a sync server.
SERVER_ONLY: Final = {
    "ssl": "TLS to a sync server",
    "socket": "a Unix socket to a sync server",
    "forbidden": "a sync server refusing with PERMISSION_DENIED",
    "syncpayload": "a sync server's sync_context",
}


@dataclass(frozen=True)
class Step:
    """One step of a case: its keyword type, its text (examples filled in), its table."""

    kind: str
    text: str
    table: tuple[tuple[str, ...], ...] | None = None


@dataclass(frozen=True)
class Case:
    """One scenario, or one Examples row of a Scenario Outline."""

    suite: str
    name: str
    line: int
    row: Mapping[str, str] | None
    tags: frozenset[str]
    steps: tuple[Step, ...]

    def label(self) -> str:
        """The scenario's name and line, and its example row if it has one."""
        where = f"{self.name} (line {self.line})"
        if self.row is None:
            return where
        return where + " " + ", ".join(f"{k}={v!r}" for k, v in self.row.items())


def parse_feature(text: str, suite: str) -> list[Case]:
    """Every case of a feature file, by Cucumber's own parser and pickle compiler.

    Pickles carry the Background's steps, the Examples rows filled in, and
    the tags of the feature, rule, scenario and Examples together.
    """
    from gherkin.parser import Parser
    from gherkin.pickles.compiler import Compiler

    document: Any = Parser().parse(text)
    document["uri"] = suite
    rows = _example_rows(document)
    cases = []
    for pickle in Compiler().compile(document):
        steps = tuple(
            Step(step["type"], step["text"], _table(step.get("argument")))
            for step in pickle["steps"]
        )
        row = next((rows[i] for i in pickle["astNodeIds"] if i in rows), None)
        cases.append(
            Case(
                suite=suite,
                name=pickle["name"],
                line=pickle["location"]["line"],
                row=row,
                tags=frozenset(tag["name"].lstrip("@") for tag in pickle["tags"]),
                steps=steps,
            )
        )
    return cases


def _example_rows(document: Any) -> dict[str, dict[str, str]]:
    """Each Examples row's AST id to its cells by column name."""
    rows: dict[str, dict[str, str]] = {}
    feature = document.get("feature") or {}
    children = list(feature.get("children", ()))
    while children:
        child = children.pop()
        if "rule" in child:
            children.extend(child["rule"].get("children", ()))
            continue
        scenario = child.get("scenario")
        for examples in (scenario or {}).get("examples", ()):
            header = examples.get("tableHeader")
            if header is None:
                continue
            names = [cell["value"] for cell in header["cells"]]
            for body in examples.get("tableBody", ()):
                values = [cell["value"] for cell in body["cells"]]
                rows[body["id"]] = dict(zip(names, values, strict=True))
    return rows


def _table(argument: Any) -> tuple[tuple[str, ...], ...] | None:
    if not argument or "dataTable" not in argument:
        return None
    return tuple(
        tuple(cell["value"] for cell in row["cells"])
        for row in argument["dataTable"]["rows"]
    )


def load_cases(testbed: Path, patterns: Sequence[str] = ()) -> list[Case]:
    """The cases of every suite in the testbed (or those whose path matches a pattern)."""
    cases: list[Case] = []
    for folder in (PROVIDER_SUITES, EVALUATOR_SUITES):
        for path in sorted((testbed / folder).glob("*.feature")):
            suite = path.relative_to(testbed).as_posix()
            if patterns and not any(fnmatch.fnmatch(suite, p) for p in patterns):
                continue
            cases.extend(parse_feature(path.read_text(encoding="utf-8"), suite))
    return cases


# ----------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Planned:
    """A case in one mode: run with a fractional bucketing, or skipped with a reason."""

    case: Case
    mode: str
    fractional: int = 3
    skip: str | None = None


_PROVIDER_STEP: Final = re.compile(r"an? (\S+) flagd provider$")


def plan(
    cases: Sequence[Case], *, fractional: Sequence[int], in_process: str | None
) -> list[Planned]:
    """Each case in each mode it is tagged for, run or skipped (with the reason).

    ``in_process``: why in-process mode cannot run (None when it can).
    """
    planned = []
    for case in cases:
        evaluator = case.suite.startswith(EVALUATOR_SUITES + "/")
        modes = (
            [EVALUATOR]
            if evaluator
            else [m for m in (FILE, IN_PROCESS) if m in case.tags]
        )
        if not modes:
            modes = [FILE]
        for mode in modes:
            skip = _skip_reason(case, mode, fractional, in_process)
            bucketing = 2 if "fractional-v2" in case.tags else 3
            planned.append(Planned(case, mode, bucketing, skip))
    return planned


def _skip_reason(
    case: Case, mode: str, fractional: Sequence[int], in_process: str | None
) -> str | None:
    tags = case.tags
    if case.suite == f"{PROVIDER_SUITES}/config.feature":
        return CONFIG_SUITE
    if mode != EVALUATOR:
        if "rpc" in tags and not tags & {"file", "in-process"}:
            return RPC_ONLY
        if not tags & {"file", "in-process"}:
            return NOT_TAGGED
    if "targetURI" in tags:
        return TARGET_URI
    if "caching" in tags:
        return CACHING
    if "fractional-v1" in tags:
        return FRACTIONAL_V1
    if "fractional-v2" in tags and 2 not in fractional:
        return FRACTIONAL_V2_OFF
    if "deprecated" in tags:
        return DEPRECATED
    if mode == IN_PROCESS and in_process is not None:
        return in_process
    if mode == FILE:
        for step in case.steps:
            match = _PROVIDER_STEP.match(step.text)
            if match and match.group(1) in SERVER_ONLY:
                return (
                    f"file mode has no {match.group(1)} provider "
                    f"({SERVER_ONLY[match.group(1)]}): in-process only"
                )
    return None


# ------------------------------------------------------------ flag sources
def deep_merge(into: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """``other`` merged into ``into``: objects merged key by key, anything else replaced.

    The launchpad's ``deepMerge`` (``launchpad/pkg/json.go``).
    """
    for key, value in other.items():
        mine = into.get(key)
        if isinstance(mine, dict) and isinstance(value, Mapping):
            into[key] = deep_merge(mine, value)
        else:
            into[key] = copy.deepcopy(value)
    return into


def combined_document(flags_dir: Path) -> dict[str, Any]:
    """The launchpad's ``allFlags.json``: every ``*.json`` but ``selector-*``, in name order."""
    combined: dict[str, Any] = {}
    for path in sorted(flags_dir.glob("*.json")):
        if path.name.startswith("selector-"):
            continue
        deep_merge(combined, json.loads(path.read_text(encoding="utf-8")))
    return combined


def write_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """Write a JSON document so a reader sees the old file or the new one, whole."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2), encoding="utf-8")
    os.replace(temporary, path)


class Control(Protocol):
    """What a scenario does to the flag source under its provider."""

    def lose_connection(self, seconds: float) -> None:
        """The source goes away for ``seconds``, then comes back."""

    def modify_flag(self) -> None:
        """``changing-flag``'s default variant flips between foo and bar."""


class FileControl:
    """A scenario's own copy of the combined document, changed as the launchpad changes it.

    The launchpad deletes ``allFlags.json`` when it stops flagd and writes
    it again when flagd starts; ``/change`` flips ``changing-flag``.
    """

    def __init__(self, path: Path, document: dict[str, Any]) -> None:
        self.path = path
        self.document = document
        write_atomically(path, document)

    def lose_connection(self, seconds: float) -> None:
        self.path.unlink()
        # The scenario's own outage (no event loop here): a duration, not a wait.
        time.sleep(seconds)  # noqa: TID251
        write_atomically(self.path, self.document)

    def modify_flag(self) -> None:
        flag = self.document["flags"]["changing-flag"]
        flag["defaultVariant"] = "bar" if flag["defaultVariant"] == "foo" else "foo"
        write_atomically(self.path, self.document)


@dataclass
class Harness:
    """A provider registered under a domain of its own, and what controls its source."""

    domain: str
    provider: AioflagsProvider
    control: Control | None = None
    error: str | None = None

    def client(self) -> OpenFeatureClient:
        return api.get_client(self.domain)


#: The reference e2e's options (python-sdk-contrib tests/e2e/step/provider_steps.py):
#: deadline 1 s, grace 2 s; a file-mode source with a lost "connection" is
#: re-read every RELOAD_INTERVAL seconds.
GRACE_PERIOD: Final = 2.0
READY_TIMEOUT: Final = 1.0
RELOAD_INTERVAL: Final = 0.1


class Providers:
    """Builds and keeps the providers: one per flag source and bucketing, shared.

    A scenario that changes its source's state gets a provider of its own.
    """

    def __init__(self, testbed: Path, workdir: Path) -> None:
        self.testbed = testbed
        self.workdir = workdir
        self._shared: dict[tuple[str, ...], Harness] = {}
        self._all: list[Harness] = []
        self._ids = itertools.count(1)
        self._combined: dict[str, Any] | None = None
        self._servers: Servers | None = None

    def combined(self) -> dict[str, Any]:
        if self._combined is None:
            self._combined = combined_document(self.testbed / "flags")
        return copy.deepcopy(self._combined)

    def _combined_path(self) -> Path:
        path = self.workdir / "allFlags.json"
        if not path.exists():
            write_atomically(path, self.combined())
        return path

    def evaluator(self, fractional: int) -> Harness:
        """aioflags over the evaluator suites' testkit flags."""
        path = self.testbed / TESTKIT_FLAGS
        return self._shared_harness(path, fractional)

    def file_provider(
        self, name: str, options: Mapping[str, Any], fractional: int, own: bool
    ) -> Harness:
        """A file-mode provider as python-sdk-contrib's file-mode e2e maps the testbed's."""
        if name == "unavailable":
            missing = self.workdir / f"unavailable-{next(self._ids)}" / "allFlags.json"
            return self._register(
                self._file_provider(missing, fractional, reload=True), wait=False
            )
        if name not in ("stable", "metadata"):
            raise SkipCase(f"file mode has no {name} provider")
        selector = options.get("selector")
        if own:
            if selector is not None:
                raise SkipCase("a selector's file never changes in file mode")
            folder = self.workdir / f"scenario-{next(self._ids)}"
            folder.mkdir()
            control = FileControl(folder / "allFlags.json", self.combined())
            harness = self._register(
                self._file_provider(control.path, fractional, reload=True), wait=True
            )
            harness.control = control
            return harness
        if selector is None or selector == "flags/allFlags.json":
            return self._shared_harness(self._combined_path(), fractional)
        name = str(selector).removeprefix("rawflags/").removeprefix("flags/")
        return self._shared_harness(self.testbed / "flags" / name, fractional)

    def _shared_harness(self, path: Path, fractional: int) -> Harness:
        key = (FILE, str(path), str(fractional))
        harness = self._shared.get(key)
        if harness is None:
            provider = self._file_provider(path, fractional, reload=False)
            harness = self._shared[key] = self._register(provider, wait=True)
        return harness

    @staticmethod
    def _file_provider(
        path: Path, fractional: int, *, reload: bool
    ) -> AioflagsProvider:
        data_system = DataSystem.file(
            path, reload=reload, interval=RELOAD_INTERVAL, fractional=fractional
        )
        return AioflagsProvider(
            Config(
                data_system=data_system,
                send_events=False,
                grace_period=GRACE_PERIOD,
                ready_timeout=READY_TIMEOUT,
            )
        )

    def _register(self, provider: AioflagsProvider, *, wait: bool) -> Harness:
        harness = Harness(f"flagd-testbed-{next(self._ids)}", provider)
        self._all.append(harness)
        if not wait:
            api.set_provider(provider, harness.domain)
            return harness
        try:
            api.set_provider_and_wait(provider, harness.domain)
        except Exception as exc:  # noqa: BLE001 - reported as the case's failure
            harness.error = f"the provider did not become READY: {exc}"
        return harness

    def release(self, harness: Harness) -> None:
        """Shut a scenario's own provider down (shared ones live to the end)."""
        if harness in self._shared.values():
            return
        harness.provider.shutdown()

    def in_process_provider(
        self, name: str, options: Mapping[str, Any], fractional: int, own: bool
    ) -> Harness:
        """``DataSystem.flagd`` against a loopback sync server serving what the launchpad would.

        As python-sdk-contrib's e2e maps the testbed's providers: deadline
        1 s, no stream deadline, backoff 1 s, grace 2 s.
        """
        if self._servers is None:
            self._servers = Servers(self)
        servers = self._servers
        config = LAUNCHPAD_CONFIG.get(name)
        if config is None and name != "unavailable":
            raise SkipCase(f"no {name} provider in the testbed's vocabulary")
        key = (IN_PROCESS, name, json.dumps(options, sort_keys=True), str(fractional))
        if not own and key in self._shared:
            return self._shared[key]
        arguments: dict[str, Any] = {
            "deadline": options.get("deadlineMs", 1000) / 1000,
            "stream_deadline": 0,
            "retry_backoff": (1.0, 1.0),
            "retry_grace_period": GRACE_PERIOD,
            "fractional": fractional,
        }
        if "selector" in options:
            arguments["selector"] = options["selector"]
        if "fatalStatusCodes" in options:
            arguments["fatal_status_codes"] = tuple(options["fatalStatusCodes"])
        control: ServerControl | None = None
        if config is None:  # unavailable: a port nothing listens on
            arguments["target"] = f"127.0.0.1:{servers.closed_port()}"
        else:
            server = servers.server(name, config, own=own)
            if name == "socket":
                arguments["socket_path"] = server.target.removeprefix("unix:")
            else:
                arguments["target"] = server.target
            if name == "ssl":
                arguments["tls"] = True
                arguments["cert_path"] = str(self.testbed / CA_CERT)
            if own:
                control = ServerControl(servers, server)
        provider = AioflagsProvider(
            Config(
                data_system=DataSystem.flagd(**arguments),
                send_events=False,
                ready_timeout=READY_TIMEOUT,
            )
        )
        harness = self._register(
            provider, wait=name not in ("unavailable", "forbidden")
        )
        harness.control = control
        if not own:
            self._shared[key] = harness
        return harness

    def close(self) -> None:
        api.clear_providers()
        if self._servers is not None:
            self._servers.close()


#: The launchpad's configurations (``launchpad/configs/*.json``), by provider
#: name: the sources served (selector name -> testbed file; the combined
#: document for ``flags/allFlags.json``), the static context, GetMetadata.
LAUNCHPAD_CONFIG: Final[dict[str, dict[str, Any]]] = {
    name: {
        "sources": ("flags/allFlags.json", "rawflags/selector-flags.json"),
        "sync_context": {"injectedmetadata": "set"},
        "get_metadata": True,
    }
    for name in ("stable", "ssl", "socket", "forbidden")
}
LAUNCHPAD_CONFIG["metadata"] = {
    "sources": ("rawflags/selector-flag-combined-metadata.json",),
    "sync_context": None,
    "get_metadata": True,
}
LAUNCHPAD_CONFIG["syncpayload"] = {
    **LAUNCHPAD_CONFIG["stable"],
    "get_metadata": False,  # sync-payload.json: disable-sync-metadata
}
#: The testbed's private CA (the image signs a CN=localhost server certificate with it).
CA_CERT: Final = "ssl/custom-root-cert.crt"
CA_KEY: Final = "ssl/custom-ca.key"


class Servers:
    """Loopback flagd sync servers (``aioflags.testing.FlagdServer``) on an event loop of their own.

    The runner is synchronous (OpenFeature's API is); the servers are
    async, so they run in an anyio blocking portal's thread (asyncio: gRPC's
    ``grpc.aio`` needs it). One server per launchpad configuration is
    shared; a scenario that stops or changes its server has its own.
    """

    def __init__(self, providers: Providers) -> None:
        import contextlib

        from anyio.from_thread import start_blocking_portal

        self.providers = providers
        self._stack = contextlib.ExitStack()
        self.portal = self._stack.enter_context(start_blocking_portal("asyncio"))
        self._shared: dict[str, Any] = {}
        self._running: list[Any] = []
        self._ids = itertools.count(1)

    def documents(self, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        testbed = self.providers.testbed
        documents = {}
        for source in config["sources"]:
            if source == "flags/allFlags.json":
                documents[source] = self.providers.combined()
            else:
                name = source.removeprefix("rawflags/")
                path = testbed / "flags" / name
                documents[source] = json.loads(path.read_text(encoding="utf-8"))
        return documents

    def server(self, name: str, config: Mapping[str, Any], *, own: bool) -> Any:
        """A started server for provider ``name`` (shared unless ``own``)."""
        if not own and name in self._shared:
            return self._shared[name]
        from aioflags.testing import FlagdServer

        options: dict[str, Any] = {
            "sources": self.documents(config),
            "sync_context": config["sync_context"],
            "get_metadata": config["get_metadata"],
        }
        workdir = self.providers.workdir / f"server-{next(self._ids)}"
        workdir.mkdir()
        if name == "socket":
            options["socket_path"] = workdir / "flagd.sock"
        if name == "ssl":
            options["tls"] = self._certificate(workdir)
        server = FlagdServer(**options)
        self.portal.call(server.start)
        self._running.append(server)
        if name == "forbidden":
            self.portal.call(server.refuse, "PERMISSION_DENIED")
        if not own:
            self._shared[name] = server
        return server

    def _certificate(self, workdir: Path) -> tuple[Path, Path]:
        """A CN=localhost server certificate signed by the testbed's CA, as its image makes one."""
        import subprocess

        testbed = self.providers.testbed
        key, request, cert = (
            workdir / n for n in ("server.key", "server.csr", "server.pem")
        )
        extensions = workdir / "san.cnf"
        extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        for command in (
            [
                "openssl",
                "genpkey",
                "-algorithm",
                "RSA",
                "-out",
                key,
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            [
                "openssl",
                "req",
                "-new",
                "-key",
                key,
                "-out",
                request,
                "-subj",
                "/CN=localhost",
            ],
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                request,
                "-CA",
                testbed / CA_CERT,
                "-CAkey",
                testbed / CA_KEY,
                "-CAcreateserial",
                "-CAserial",
                workdir / "ca.srl",
                "-out",
                cert,
                "-days",
                "1",
                "-sha256",
                "-extfile",
                extensions,
            ],
        ):
            subprocess.run([str(c) for c in command], check=True, capture_output=True)
        return cert, key

    def closed_port(self) -> int:
        """A loopback port nothing listens on (bound, then closed)."""
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        return port

    def close(self) -> None:
        for server in self._running:
            self.portal.call(server.stop)
        self._stack.close()


class ServerControl:
    """A scenario's own server, stopped and started, and changed, as the launchpad does it."""

    def __init__(self, servers: Servers, server: Any) -> None:
        self.servers = servers
        self.server = server

    def lose_connection(self, seconds: float) -> None:
        self.servers.portal.call(self.server.stop)
        # The scenario's own outage (no event loop here): a duration, not a wait.
        time.sleep(seconds)  # noqa: TID251
        self.servers.portal.call(self.server.start)

    def modify_flag(self) -> None:
        document = self.server.selected("flags/allFlags.json")
        flag = dict(document["flags"]["changing-flag"])
        flag["defaultVariant"] = "bar" if flag["defaultVariant"] == "foo" else "foo"
        self.servers.portal.call(
            lambda: self.server.set_flag(
                "changing-flag", flag, source="flags/allFlags.json"
            )
        )


def in_process_unavailable() -> str | None:
    """Why in-process mode cannot run (None once aioflags has what it needs)."""
    import importlib.util

    if importlib.util.find_spec("grpc") is None:
        return "needs the flagd extra: pip install 'aioflags[flagd]'"
    return None


# --------------------------------------------------------------- the steps
class SkipCase(Exception):
    """The case cannot run in this mode (its reason is reported)."""


class StepFailed(AssertionError):
    """A step's expectation did not hold."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"expected {expected}; got {actual}")
        self.expected = expected
        self.actual = actual


def _boolean(value: str) -> bool:
    return value.lower() in ("yes", "true", "t", "1")


def _object(value: str) -> Any:
    # A table cell keeps \" as it is written (Gherkin unescapes only \|, \n, \\).
    return json.loads(value.replace('\\"', '"'))


#: The testbed's types, as its reference steps cast them.
CASTS: Final[dict[str, Callable[[str], Any]]] = {
    "Boolean": _boolean,
    "String": str,
    "Integer": int,
    "Long": int,
    "Float": float,
    "Object": _object,
}

EVENTS: Final = {
    "ready": ProviderEvent.PROVIDER_READY,
    "error": ProviderEvent.PROVIDER_ERROR,
    "stale": ProviderEvent.PROVIDER_STALE,
    "change": ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
}


class EventLog:
    """Events received by the scenario's handlers, by type, in order, each seen once."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[EventDetails]] = {}
        self._changed = threading.Condition()

    def handler(self, kind: str) -> Callable[[EventDetails], None]:
        def handle(details: EventDetails) -> None:
            with self._changed:
                self._queues.setdefault(kind, deque()).append(details)
                self._changed.notify_all()

        return handle

    def take(self, kind: str, timeout: float) -> EventDetails | None:
        """The oldest event of ``kind`` not taken yet, waiting up to ``timeout`` for one."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._queues.get(kind)), timeout)
            queue = self._queues.get(kind)
            return queue.popleft() if queue else None


@dataclass
class Scenario:
    """One case's state as its steps build it."""

    planned: Planned
    providers: Providers
    event_timeout: float
    options: dict[str, Any] = field(default_factory=dict)
    harness: Harness | None = None
    client: OpenFeatureClient | None = None
    flag: tuple[str, str, str] | None = None  # key, default (as written), type
    targeting_key: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    details: FlagEvaluationDetails[Any] | None = None
    events: EventLog = field(default_factory=EventLog)
    handlers: list[tuple[ProviderEvent, Callable[[EventDetails], None]]] = field(
        default_factory=list
    )
    last_event: EventDetails | None = None

    @property
    def changes_state(self) -> bool:
        """Whether a step changes the flag source (the scenario needs its own provider)."""
        return any(
            step.text.startswith(("the connection is lost", "the flag was modified"))
            for step in self.planned.case.steps
        )

    def use(self, harness: Harness) -> None:
        if harness.error is not None:
            raise StepFailed("a READY provider", harness.error)
        self.harness = harness
        self.client = harness.client()

    def require_client(self) -> OpenFeatureClient:
        if self.client is None:
            raise StepFailed("a provider given before this step", "none")
        return self.client

    def require_details(self) -> FlagEvaluationDetails[Any]:
        if self.details is None:
            raise StepFailed("an evaluation before this step", "none")
        return self.details

    def close(self) -> None:
        if self.client is not None:
            for event, handler in self.handlers:
                self.client.remove_handler(event, handler)
        if self.harness is not None:
            self.providers.release(self.harness)


StepFunction = Callable[[Scenario, "re.Match[str]", Step], None]
STEPS: list[tuple[re.Pattern[str], StepFunction]] = []


def step(pattern: str) -> Callable[[StepFunction], StepFunction]:
    """Register a step function for texts matching ``pattern`` (whole text)."""

    def register(function: StepFunction) -> StepFunction:
        STEPS.append((re.compile(pattern + "$"), function))
        return function

    return register


# Setup.
@step(
    r'an option "(?P<name>[^"]+)" of type "(?P<type>[^"]+)" with value "(?P<value>.*)"'
)
def _option(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    kind, value = match["type"], match["value"]
    cast = CASTS.get(kind)
    if kind == "StringList":
        typed: Any = [v.strip() for v in value.split(",") if v.strip()]
    elif cast is not None:
        typed = cast(value)
    else:  # CacheType, ResolverType...: the RPC resolver's or the reference's own
        typed = value
    scenario.options[match["name"]] = typed


@step(r"an? (?P<name>\S+) flagd provider")
def _provider(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    planned = scenario.planned
    make = (
        scenario.providers.file_provider
        if planned.mode == FILE
        else scenario.providers.in_process_provider
    )
    scenario.use(
        make(
            match["name"],
            scenario.options,
            planned.fractional,
            own=scenario.changes_state,
        )
    )


@step(r"an evaluator")
def _evaluator(scenario: Scenario, _: re.Match[str], __: Step) -> None:
    scenario.use(scenario.providers.evaluator(scenario.planned.fractional))


# Flags and context.
@step(
    r'an? (?P<type>\w+)-flag with key "(?P<key>[^"]*)" and a (?:default|fallback) value "(?P<default>.*)"'
)
def _flag(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    if match["type"] not in CASTS:
        raise StepFailed("a flag type the testbed uses", repr(match["type"]))
    scenario.flag = (match["key"], match["default"], match["type"])


@step(r'a context containing a targeting key with value "(?P<value>.*)"')
def _targeting_key(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    scenario.targeting_key = match["value"]


@step(
    r'a context containing a key "(?P<key>[^"]*)", with type "(?P<type>[^"]+)" and with value "(?P<value>.*)"'
)
def _attribute(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    scenario.attributes[match["key"]] = CASTS[match["type"]](match["value"])


@step(
    r'a context containing a nested property with outer key "(?P<outer>[^"]*)" and inner key "(?P<inner>[^"]*)", with value "(?P<value>.*)"'
)
def _nested(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    scenario.attributes.setdefault(match["outer"], {})[match["inner"]] = match["value"]


# Actions.
@step(r"the flag was evaluated with details")
def _evaluate(scenario: Scenario, _: re.Match[str], __: Step) -> None:
    client = scenario.require_client()
    if scenario.flag is None:
        raise StepFailed("a flag given before this step", "none")
    key, written, kind = scenario.flag
    default = CASTS[kind](written)
    context = EvaluationContext(scenario.targeting_key, dict(scenario.attributes))
    details: FlagEvaluationDetails[Any]
    if kind == "Boolean":
        details = client.get_boolean_details(key, default, context)
    elif kind == "String":
        details = client.get_string_details(key, default, context)
    elif kind in ("Integer", "Long"):
        details = client.get_integer_details(key, default, context)
    elif kind == "Float":
        details = client.get_float_details(key, default, context)
    else:
        details = client.get_object_details(key, default, context)
    scenario.details = details


@step(r"the connection is lost for (?P<seconds>\d+(?:\.\d+)?)s")
def _lose_connection(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    control = scenario.harness.control if scenario.harness else None
    if control is None:
        raise StepFailed("a provider whose source the runner controls", "none")
    control.lose_connection(float(match["seconds"]))


@step(r"the flag was modified")
def _modify(scenario: Scenario, _: re.Match[str], __: Step) -> None:
    control = scenario.harness.control if scenario.harness else None
    if control is None:
        raise StepFailed("a provider whose source the runner controls", "none")
    control.modify_flag()


# Outcomes.
def _show(details: FlagEvaluationDetails[Any]) -> str:
    reason = getattr(details.reason, "value", details.reason)
    code = getattr(details.error_code, "value", details.error_code)
    shown = f"value={details.value!r} reason={reason} variant={details.variant!r}"
    if code is not None:
        shown += f" error_code={code}"
    if details.error_message:
        shown += f" ({details.error_message})"
    return shown


def same(expected: Any, actual: Any) -> bool:
    """Equal and of the same JSON type (``1`` is not ``1.0``, ``True`` is not ``1``)."""
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(same(v, actual[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(same(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return type(expected) is type(actual) and expected == actual


@step(r'the resolved details value should be "(?P<value>.*)"')
def _value(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    details = scenario.require_details()
    assert scenario.flag is not None
    expected = CASTS[scenario.flag[2]](match["value"])
    if not same(expected, details.value):
        raise StepFailed(f"value={expected!r}", _show(details))


@step(r'the reason should be "(?P<reason>.*)"')
def _reason(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    details = scenario.require_details()
    reason = getattr(details.reason, "value", details.reason)
    if reason != match["reason"]:
        raise StepFailed(f"reason={match['reason']}", _show(details))


@step(r'the variant should be "(?P<variant>.*)"')
def _variant(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    details = scenario.require_details()
    if details.variant != match["variant"]:
        raise StepFailed(f"variant={match['variant']!r}", _show(details))


@step(r'the error-code should be "(?P<code>.*)"')
def _error_code(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    details = scenario.require_details()
    code = getattr(details.error_code, "value", details.error_code)
    expected = match["code"] or None
    if code != expected:
        raise StepFailed(f"error_code={expected}", _show(details))


@step(r"the resolved metadata should contain")
def _metadata(scenario: Scenario, _: re.Match[str], step_: Step) -> None:
    details = scenario.require_details()
    if not step_.table:
        raise StepFailed("a table of metadata", "none")
    expected = {key: CASTS[kind](value) for key, kind, value in step_.table[1:]}
    actual = dict(details.flag_metadata)
    if not same(expected, actual):
        raise StepFailed(f"metadata={expected!r}", f"metadata={actual!r}")


@step(r"the resolved metadata is empty")
def _no_metadata(scenario: Scenario, _: re.Match[str], __: Step) -> None:
    details = scenario.require_details()
    if details.flag_metadata:
        raise StepFailed("no metadata", f"metadata={dict(details.flag_metadata)!r}")


# Events.
@step(r"an? (?P<kind>\w+) event handler")
def _handler(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    client = scenario.require_client()
    event = EVENTS[match["kind"]]
    handler = scenario.events.handler(match["kind"])
    scenario.handlers.append((event, handler))
    client.add_handler(event, handler)


@step(
    r"the (?P<kind>\w+) event handler should have been executed(?: within (?P<ms>\d+)ms)?"
)
def _handled(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    timeout = int(match["ms"]) / 1000 if match["ms"] else scenario.event_timeout
    if scenario.events.take(match["kind"], timeout) is None:
        raise StepFailed(
            f"a {match['kind']} event within {timeout:g} s",
            f"none (provider status {scenario.require_client().get_provider_status().name})",
        )


@step(r"an? (?P<kind>\w+) event was fired")
def _fired(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    event = scenario.events.take(match["kind"], scenario.event_timeout)
    if event is None:
        raise StepFailed(
            f"a {match['kind']} event within {scenario.event_timeout:g} s",
            f"none (provider status {scenario.require_client().get_provider_status().name})",
        )
    scenario.last_event = event


@step(r"the flag should be part of the event payload")
def _in_payload(scenario: Scenario, _: re.Match[str], __: Step) -> None:
    if scenario.flag is None or scenario.last_event is None:
        raise StepFailed("a flag and an event before this step", "none")
    changed = scenario.last_event.flags_changed or []
    if scenario.flag[0] not in changed:
        raise StepFailed(f"{scenario.flag[0]!r} among the changed flags", repr(changed))


@step(r"the client should be in (?P<status>\w+) state")
def _status(scenario: Scenario, match: re.Match[str], _: Step) -> None:
    status = scenario.require_client().get_provider_status()
    if status is not ProviderStatus[match["status"].upper()]:
        raise StepFailed(f"status {match['status'].upper()}", status.name)


# --------------------------------------------------------------- the runner
@dataclass(frozen=True)
class Outcome:
    """How one planned case ended: passed, failed (where and why) or skipped (why)."""

    planned: Planned
    status: str  # passed | failed | skipped
    reason: str | None = None  # the skip's reason
    step: str | None = None  # the failing step
    expected: str | None = None
    actual: str | None = None


def run_case(planned: Planned, providers: Providers, event_timeout: float) -> Outcome:
    """Run one case's steps in order; the first failing step ends it."""
    if planned.skip is not None:
        return Outcome(planned, "skipped", reason=planned.skip)
    scenario = Scenario(planned, providers, event_timeout)
    try:
        for current in planned.case.steps:
            found = _find(current.text)
            if found is None:
                return Outcome(
                    planned,
                    "failed",
                    step=current.text,
                    expected="a step the runner knows",
                    actual="undefined step",
                )
            pattern_match, function = found
            try:
                function(scenario, pattern_match, current)
            except SkipCase as exc:
                return Outcome(planned, "skipped", reason=str(exc))
            except StepFailed as exc:
                return Outcome(
                    planned, "failed", None, current.text, exc.expected, exc.actual
                )
            except Exception as exc:  # noqa: BLE001 - a runner reports, it does not stop
                return Outcome(
                    planned,
                    "failed",
                    None,
                    current.text,
                    "no error",
                    f"{type(exc).__name__}: {exc}",
                )
        return Outcome(planned, "passed")
    finally:
        scenario.close()


def _find(text: str) -> tuple[re.Match[str], StepFunction] | None:
    for pattern, function in STEPS:
        match = pattern.match(text)
        if match:
            return match, function
    return None


@dataclass
class SuiteCounts:
    """One suite's counts."""

    passed: int = 0
    failed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failures: list[Outcome] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "skipped": sum(self.skipped.values()),
            "skippedBy": dict(sorted(self.skipped.items())),
            "failures": [
                {
                    "scenario": o.planned.case.name,
                    "line": o.planned.case.line,
                    "row": dict(o.planned.case.row) if o.planned.case.row else None,
                    "mode": o.planned.mode,
                    "fractional": o.planned.fractional,
                    "step": o.step,
                    "expected": o.expected,
                    "actual": o.actual,
                }
                for o in self.failures
            ],
        }


def count(outcomes: Sequence[Outcome]) -> dict[str, SuiteCounts]:
    """Counts per suite (feature file), in the order the suites ran."""
    suites: dict[str, SuiteCounts] = {}
    for outcome in outcomes:
        counts = suites.setdefault(outcome.planned.case.suite, SuiteCounts())
        if outcome.status == "passed":
            counts.passed += 1
        elif outcome.status == "failed":
            counts.failed += 1
            counts.failures.append(outcome)
        else:
            counts.skipped[f"[{outcome.planned.mode}] {outcome.reason}"] += 1
    return suites


def report(suites: Mapping[str, SuiteCounts], out: Any = None) -> None:
    """Per suite: passed / failed / skipped by reason; each failure, where and why."""
    out = sys.stdout if out is None else out
    totals = SuiteCounts()
    for suite, counts in suites.items():
        skipped = sum(counts.skipped.values())
        print(
            f"{suite}: {counts.passed} passed, {counts.failed} failed, {skipped} skipped",
            file=out,
        )
        for reason, n in sorted(counts.skipped.items()):
            print(f"    skipped {n}: {reason}", file=out)
        for failure in counts.failures:
            case = failure.planned.case
            mode = failure.planned.mode
            if failure.planned.fractional != 3:
                mode += f", fractional={failure.planned.fractional}"
            print(f"    FAILED [{mode}] {case.label()}", file=out)
            print(f"        step: {failure.step}", file=out)
            print(f"        expected {failure.expected}", file=out)
            print(f"        actual   {failure.actual}", file=out)
        totals.passed += counts.passed
        totals.failed += counts.failed
        totals.skipped.update(counts.skipped)
    print(
        f"total: {totals.passed} passed, {totals.failed} failed, "
        f"{sum(totals.skipped.values())} skipped",
        file=out,
    )


def run(
    testbed: Path,
    *,
    patterns: Sequence[str] = (),
    fractional: Sequence[int] = (3, 2),
    event_timeout: float = 30.0,
    verbose: bool = False,
    out: Any = None,
) -> list[Outcome]:
    """Plan and run every selected case; the outcomes in the order they ran."""
    out = sys.stdout if out is None else out
    cases = load_cases(testbed, patterns)
    planned = plan(cases, fractional=fractional, in_process=in_process_unavailable())
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="flagd-testbed-") as workdir:
        providers = Providers(testbed, Path(workdir))
        try:
            for item in planned:
                outcome = run_case(item, providers, event_timeout)
                if verbose:
                    print(
                        f"{outcome.status:7} [{item.mode}] {item.case.suite}: {item.case.label()}",
                        file=out,
                        flush=True,
                    )
                outcomes.append(outcome)
        finally:
            providers.close()
    return outcomes


def _fractional(text: str) -> tuple[int, ...]:
    versions = tuple(int(v) for v in text.split(",") if v.strip())
    if not versions or any(v not in (2, 3) for v in versions):
        raise argparse.ArgumentTypeError("a comma list of 3 and 2")
    return versions


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: run, report, exit 1 on any failure."""
    parser = argparse.ArgumentParser(
        description="Run flagd's testbed Gherkin suites through aioflags' OpenFeature provider."
    )
    parser.add_argument(
        "--testbed", type=Path, required=True, help="the testbed's checkout"
    )
    parser.add_argument(
        "--suite",
        action="append",
        default=[],
        help="run only suites whose path (e.g. gherkin/targeting.feature, evaluator/*) matches; repeatable",
    )
    parser.add_argument(
        "--fractional",
        type=_fractional,
        default=(3, 2),
        help="bucketings to run: 3 (everything but @fractional-v1/v2) and 2 (@fractional-v2, with fractional=2); default 3,2",
    )
    parser.add_argument(
        "--json", type=Path, help="write the counts and failures to this file"
    )
    parser.add_argument(
        "--event-timeout",
        type=float,
        default=30.0,
        help="seconds an event step waits (default 30)",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="print each case as it ends"
    )
    parser.add_argument(
        "--log-level",
        default="CRITICAL",
        help="aioflags' and OpenFeature's log lines to stderr from this level (default CRITICAL: none)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    if (
        not (args.testbed / PROVIDER_SUITES).is_dir()
        and not (args.testbed / EVALUATOR_SUITES).is_dir()
    ):
        parser.error(
            f"{args.testbed} holds neither {PROVIDER_SUITES}/ nor {EVALUATOR_SUITES}/"
        )
    outcomes = run(
        args.testbed,
        patterns=args.suite,
        fractional=args.fractional,
        event_timeout=args.event_timeout,
        verbose=args.verbose,
    )
    suites = count(outcomes)
    report(suites)
    if args.json is not None:
        version = args.testbed / "version.txt"
        args.json.write_text(
            json.dumps(
                {
                    "testbed": str(args.testbed),
                    "testbedVersion": version.read_text().strip()
                    if version.exists()
                    else None,
                    "suites": {name: c.as_json() for name, c in suites.items()},
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return 1 if any(c.failed for c in suites.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
