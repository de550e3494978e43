"""The ``aioflags`` command (also ``python -m aioflags``).

- ``serve FILE``: a local flag service from a flag file. Serves FDv2
  (``/sdk/poll``, ``/sdk/stream``) and FDv1 (``/sdk/latest-all``, ``/all``) on
  127.0.0.1, watches the file and pushes edits to connected clients, and stops
  cleanly on Ctrl-C.
- ``validate FILE...``: check flag files and say what is wrong, exit 1 if anything is.
- ``eval FLAG --context JSON``: evaluate one flag from flag files or the flag
  service, and print the value, the variation and the reason as JSON.
- ``diff OLD NEW --contexts FILE``: which contexts a change of flag files
  flips, flag by flag; exit 1 if anything changes.
- ``schema``: print the JSON Schema of flag files (for editors).
- ``codegen FILE... -o MODULE.py``: a typed accessor per flag (``--check``:
  exit 1 with a diff when MODULE.py is not what the files make now).
- ``cleanup FLAG --keep VALUE PATHS...``: rewrite the code that evaluates
  FLAG as if it always served VALUE, and fold what that makes dead (libcst:
  ``aioflags[codemod]``); refused (exit 1) when ``--evidence`` or ``--flags``
  say FLAG serves something else, unless ``--force``.
- ``lens mint`` / ``lens inspect``: flag lens tokens (docs/lens.md).
- ``plane PATH``: lead the flag plane at PATH for the workers of this host,
  with no app (a sidecar); the flag service from ``AIOFLAGS_*`` variables.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ._asgi._limits import Limits
from ._core._clock import MonotonicClock
from ._core._exceptions import AioflagsError, ConfigurationError, ProtocolError
from ._core._json import parse
from ._datasystem._sources._files import FlagFileError, load_flag_files
from ._datasystem._sources._watch import Failed, FlagFileWatcher, Held, Loaded
from ._service._server import FlagServer
from ._version import __version__

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ._core._json import JSONValue

_WATCH_INTERVAL = 0.25
#: ``serve`` keeps the last this many requests and event payloads (memory stays
#: bounded however long it runs; the console's log is bounded by itself).
SERVE_KEEP = 1000
#: ... and at most this many bytes of recorded request bodies (and as many of
#: event payloads): ten 8 MiB event posts keep it under 150 MB.
SERVE_KEEP_BYTES = 32 * 1024 * 1024


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    address = _ip(host)
    return host == "localhost" or (address is not None and address.is_loopback)


def _literal_host(host: str) -> str:
    """``--host`` as a URL or an error line writes it (an IPv6 address in brackets)."""
    address = _ip(host)
    return host if address is None else _literal(address)


def _literal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address as a URL names it (IPv6 in brackets)."""
    return f"[{address}]" if address.version == 6 else str(address)


def _console_url(url: str, host: str, bound: str) -> str:
    """The console's address (``Console: ...`` at start).

    The console answers loopback names and the IP address the service is
    bound to, never another name (DNS rebinding). ``bound`` is the address
    the socket got: on a wildcard (``::`` is IPv6 only) the console is at
    that family's loopback address, which ``localhost`` may not name.
    """
    port = url.rsplit(":", 1)[1]
    if _is_loopback(host):
        return f"{url}/ui/"
    address = ipaddress.ip_address(bound)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    elif not address.is_loopback and address != _ip(host):
        # A host name bound to another address: the console answers neither
        # that name nor that address (is_allowed_host), localhost as before.
        return f"http://localhost:{port}/ui/"
    return f"http://{_literal(address)}:{port}/ui/"


def _listening(url: str, host: str, bound: str) -> str | None:
    """What ``--allow-remote`` bound, said at start (None on loopback)."""
    if _is_loopback(host):
        return None
    address = ipaddress.ip_address(bound)
    where = f"{_literal(address)}:{url.rsplit(':', 1)[1]}"
    if not address.is_unspecified:
        return f"Listening on {where}" + ("" if _ip(host) == address else f" ({host})")
    family, other, flag = (
        ("IPv6", "IPv4", "0.0.0.0") if address.version == 6 else ("IPv4", "IPv6", "::")
    )
    return (
        f"Listening on {where}: every {family} address of this machine, "
        f"and no {other} one (--host {flag} for {other})"
    )


def _trouble(path: Path, message: str) -> tuple[str, int | None, str]:
    """A loader's one-line error as the console shows it: file, line, message.

    The loader writes ``PATH:LINE:COLUMN: problem`` where it knows the line,
    ``PATH: problem`` otherwise.
    """
    name = str(path)
    rest = message.removeprefix(name) if message.startswith(name) else message
    where, colon, problem = rest.partition(": ")
    numbers = where.lstrip(":").split(":")
    if colon and numbers[0].isdigit():
        return name, int(numbers[0]), problem
    return name, None, rest.removeprefix(": ")


async def serve(
    path: Path,
    host: str,
    port: int,
    lens_secret: bytes | None = None,
    limits: Limits | None = None,
    lens_allow: list[str] | None = None,
) -> None:
    """Serve ``path`` until cancelled, reloading it when it changes."""
    # Read once, by the reloader's own rule: an empty file is refused at
    # start as on a reload (a save being written).
    watcher = FlagFileWatcher((path,), MonotonicClock())
    first = watcher.load()
    async with FlagServer(
        first.flags,
        first.segments,
        host=host,
        port=port,
        keep=SERVE_KEEP,
        keep_bytes=SERVE_KEEP_BYTES,
        lens_secret=lens_secret,
        lens_allow=lens_allow,
        limits=limits,
    ) as server:
        print(f"aioflags flag service for {path} at {server.url}", flush=True)
        print(_config_line(server.url), flush=True)
        console = _console_url(server.url, host, server.address)
        if server.lens_key is not None:
            # (after "#": a fragment reaches no request, so no log; the page
            # keeps the key, and only a page that has it makes lens links)
            console = f"{console}#lens-key={server.lens_key}"
        print(f"Console: {console}", flush=True)
        if server.lens_key is not None:
            print(
                "  Share a lens signs with the lens secret: only a page opened at"
                " this address (with its #lens-key, new at each start) may use it",
                flush=True,
            )
        listening = _listening(server.url, host, server.address)
        if listening is not None:
            print(listening, flush=True)
        await watch(path, server, watcher)


async def watch(
    path: Path,
    server: FlagServer,
    watcher: FlagFileWatcher,
    *,
    interval: float = _WATCH_INTERVAL,
) -> None:
    """``serve``'s reloader: apply each settled save of ``path`` to ``server``, forever.

    ``watcher`` made the server's first load (:meth:`FlagFileWatcher.load`).
    The rule of when a save applies is the file source's
    (:mod:`aioflags._datasystem._sources._watch`); a save that is refused,
    or held for dropping most flags, shows on the console's trouble alert
    and on stderr, and the last good data is served meanwhile. Checks wait
    on the watcher's clock (a fake one in tests).
    """
    while True:
        await watcher.clock.sleep(interval)
        outcome = await watcher.check()
        if isinstance(outcome, Failed):
            print(f"not reloaded: {outcome.message}", file=sys.stderr, flush=True)
            server.show_file_trouble(*_trouble(path, outcome.message))
        elif isinstance(outcome, Held):
            if outcome.warn:  # logged at WARNING
                server.show_file_trouble(*_trouble(path, outcome.message))
            else:  # a quiet wait: what was shown before is not the news now
                server.clear_file_trouble()
        elif isinstance(outcome, Loaded):
            try:
                server.replace_all(outcome.flags, outcome.segments)
            except Exception as exc:  # noqa: BLE001 - a save's fault refuses that save alone
                from ._datasystem._sources._cause import cause_of

                message = f"{path}: cannot be served: {cause_of(exc)}"
                print(f"not reloaded: {message}", file=sys.stderr, flush=True)
                server.show_file_trouble(*_trouble(path, message))
                continue
            server.clear_file_trouble()
            print(
                f"reloaded {path}: {len(outcome.flags)} flags, "
                f"{len(outcome.segments)} segments",
                flush=True,
            )


def _cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each cycle of a graph once, as its path from its first node back to it.

    Depth first with a stack of its own, not Python's: a chain of thousands
    of flags is no deeper for it than a short one.
    """
    cycles: list[list[str]] = []
    done: set[str] = set()
    for start in edges:
        if start in done:
            continue
        path = [start]
        on_path = {start}
        targets = [iter(edges[start])]
        while targets:
            target = next(targets[-1], None)
            if target is None:  # every edge of path[-1] followed
                node = path.pop()
                on_path.discard(node)
                done.add(node)
                targets.pop()
            elif target in on_path:
                cycles.append([*path[path.index(target) :], target])
            elif target not in done and target in edges:
                path.append(target)
                on_path.add(target)
                targets.append(iter(edges[target]))
    return cycles


def _too_deep(runs: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """The nodes whose chains go deeper than the evaluator follows them.

    ``runs`` maps each flag the evaluator runs (not constant) to its
    prerequisites' keys, or each segment with rules to the segments its
    rules reference. The evaluator aborts (MALFORMED_FLAG) when it is about
    to run one deeper than ``MAX_CHAIN_DEPTH`` levels below the first, so a
    node is listed when its longest chain is longer than that: with the
    chain, from it to the deepest node.
    Cycles are left to :func:`_cycles` (an edge back into the path is not
    followed). Iterative, as :func:`_cycles`.
    """
    from ._evaluation._evaluate import MAX_CHAIN_DEPTH

    #: the longest chain below each flag whose chains are all known
    below: dict[str, list[str]] = {}
    for start in runs:
        if start in below:
            continue
        path = [start]
        targets = [iter(runs[start])]
        deepest: list[list[str]] = [[]]
        while targets:
            target = next(targets[-1], None)
            if target is None:
                node = path.pop()
                targets.pop()
                below[node] = chain = deepest.pop()
                if deepest and len(chain) + 1 > len(deepest[-1]):
                    deepest[-1] = [node, *chain]
            elif target in below:
                if len(below[target]) + 1 > len(deepest[-1]):
                    deepest[-1] = [target, *below[target]]
            elif target in runs and target not in path:
                path.append(target)
                targets.append(iter(runs[target]))
                deepest.append([])
    return {
        key: [key, *below[key]] for key in runs if len(below[key]) > MAX_CHAIN_DEPTH
    }


def _shortened(chain: list[str]) -> str:
    """A chain of flags for a message: its ends, and how many are between."""
    if len(chain) <= 6:
        return " -> ".join(chain)
    return (
        f"{' -> '.join(chain[:3])} -> ... ({len(chain) - 6} more) -> "
        f"{' -> '.join(chain[-3:])}"
    )


def validate(paths: list[Path]) -> int:
    """Check flag files as a linter would; print what is wrong, where. 0 if nothing.

    First what the schema says (an unknown field, with the one meant; an
    unknown operator; a value of the wrong type) and what no file defines
    (a prerequisite's flag, a ``segmentMatch``'s segment), each at its
    ``file:line:col``: the SDK ignores an unknown field and never matches
    an unknown operator, as LaunchDarkly's do, so nothing else would say so.
    Then what makes evaluations return MALFORMED_FLAG: the compiler's own
    verdicts (a malformed flag or segment, a variation index out of range,
    a rule that serves nothing, an invalid attribute reference), and the
    prerequisite and segment cycles the evaluator aborts. A flagd file is
    checked as flagd reads it (``_lint.flagd_problems``: a field flagd
    ignores, variants of several types, a default variant that names none,
    a ``$ref`` to no evaluator, targeting that can only fail), and its
    targeting compiled: a rule flagd cannot apply makes the flag a
    PARSE_ERROR. What flagd serves all the same (a ``fractional`` whose
    weights are all 0, a ``sem_ver`` operator it lacks) is a warning: said,
    counted, and no change to the exit status.
    """
    from ._datasystem._sources._files import flag_file_text
    from ._datasystem._sources._lint import lint, pointer
    from ._evaluation._evaluate import MAX_CHAIN_DEPTH
    from ._evaluation._model import checked_flag, checked_segment

    try:
        # Empty is an error, as it is to serve and DataSystem.file's reloads.
        # (warn=False: what the loader would log, an index out of range,
        # is said below with its line, once)
        flags, segments = load_flag_files(*paths, allow_empty=False, warn=False)
        files = [(path, *flag_file_text(path)) for path in paths]
    except FlagFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        linted, where = lint(files, flags, segments)
    except RecursionError:  # (what the reader took, nested past the walks)
        names = ", ".join(str(p) for p in paths)
        print(f"error: {names}: nested too deeply to check", file=sys.stderr)
        return 1
    # A flag or segment whose shape the schema refuses: said there, where
    # it is, rather than again in the compiler's words.
    misshapen = {(p.at[0], p.at[1]) for p in linted if p.shape and len(p.at) > 1}
    problems: list[str] = []
    parse_errors: list[str] = []
    prerequisites: dict[str, tuple[str, ...]] = {}
    runs: dict[str, tuple[str, ...]] = {}  # the flags the evaluator runs
    flagd = {key for key, raw in flags.items() if "flagd" in raw}
    for key, raw in flags.items():
        flag, found = checked_flag(key, raw)
        at = where.get(("flags", key), "")
        if ("flags", key) in misshapen:
            continue
        if key in flagd:  # a flagd flag the model cannot use: PARSE_ERROR
            parse_errors += (f"{at}: flag {key!r}: {problem}" for problem in found)
        else:
            problems += (f"{at}: flag {key!r}: {problem}" for problem in found)
        prerequisites[key] = flag.prerequisite_keys
        if flag.constant is None:
            runs[key] = flag.prerequisite_keys
    nested: dict[str, frozenset[str]] = {}
    matched: dict[str, list[str]] = {}  # the segments whose rules are matched
    for key, raw in segments.items():
        segment, found = checked_segment(key, raw)
        at = where.get(("segments", key), "")
        if ("segments", key) not in misshapen:
            problems += (f"{at}: segment {key!r}: {problem}" for problem in found)
        nested[key] = segment.segment_keys
        if segment.rules:  # the evaluator follows a segment's rules alone
            matched[key] = sorted(segment.segment_keys)
    problems += (
        f"{where.get(('flags', cycle[0]), '')}: flag {cycle[0]!r}: prerequisite "
        f"cycle {' -> '.join(cycle)}"
        for cycle in _cycles(prerequisites)
    )
    problems += (
        f"{where.get(('flags', key), '')}: flag {key!r}: prerequisite chain "
        f"{len(chain) - 1} levels deep, more than the evaluator's "
        f"{MAX_CHAIN_DEPTH}: {_shortened(chain)}"
        for key, chain in _too_deep(runs).items()
    )
    problems += (
        f"{where.get(('segments', key), '')}: segment {key!r}: segment rule chain "
        f"{len(chain) - 1} levels deep, more than the evaluator's "
        f"{MAX_CHAIN_DEPTH}: {_shortened(chain)}"
        for key, chain in _too_deep(matched).items()
    )
    problems += (
        f"{where.get(('segments', cycle[0]), '')}: segment {cycle[0]!r}: segment "
        f"rule cycle {' -> '.join(cycle)}"
        for cycle in _cycles({k: sorted(v) for k, v in nested.items()})
    )
    for p in linted:
        malformed = (
            " (evaluations that reach it are MALFORMED_FLAG)"
            if p.shape and not (len(p.at) > 1 and p.at[1] in flagd)
            else ""
        )
        kind = "warning" if p.warning else "error"
        print(
            f"{kind}: {p.place}: {pointer(p.at)}: {p.what}{malformed}", file=sys.stderr
        )
    for problem in problems:
        print(
            f"error: {problem} (evaluations that reach it are MALFORMED_FLAG)",
            file=sys.stderr,
        )
    for problem in parse_errors:
        print(
            f"error: {problem} (every evaluation of it is PARSE_ERROR)", file=sys.stderr
        )
    warnings = sum(p.warning for p in linted)
    count = len(linted) - warnings + len(problems) + len(parse_errors)
    names = ", ".join(str(p) for p in paths)
    verdict = f"{count} problem(s)" if count else "valid"
    if warnings:  # (what flagd serves all the same: the exit status stays)
        verdict += f", {warnings} warning(s)"
    print(f"{names}: {len(flags)} flags, {len(segments)} segments: {verdict}")
    return 1 if count else 0


def _context(text: str) -> JSONValue:
    """``--context``: JSON, ``@path`` to a JSON file, or a key (a user).

    A key is bare (``user-42``) or a JSON string (``"user-42"``, what
    ``json.dumps`` writes): the quotes are never part of it.

    Raises:
        ValueError: text that starts with a quote but is not a JSON string.
    """
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    stripped = text.strip()
    if stripped.startswith('"'):
        try:
            key = parse(stripped)
        except ProtocolError:
            key = None
        if not isinstance(key, str):
            raise ValueError(
                f"{stripped[:40]!r} starts with a quote but is not a JSON string: "
                'give the key bare (user-42) or as JSON ("user-42")'
            )
        return {"kind": "user", "key": key}
    if not stripped.startswith("{"):
        return {"kind": "user", "key": text}
    return parse(text)  # the strict parser: nesting too deep is an error, too


async def evaluate(key: str, context: JSONValue, files: list[Path]) -> int:
    """Evaluate ``key`` from files, or from the service the environment names."""
    from ._client._client import Client
    from ._client._config import Config
    from ._datasystem._config import DataSystem
    from ._evaluation._context import logger, read_context, written_otherwise

    # A look from the command line is not a use of the flag: no analytics events.
    # A look waits longer for the data than an app's start does (10 s, unless
    # the environment says how long).
    config = (
        Config(data_system=DataSystem.file(*files), ready_timeout=10)
        if files
        else Config.from_env(send_events=False)
        if "AIOFLAGS_READY_TIMEOUT" in os.environ
        else Config.from_env(send_events=False, ready_timeout=10)
    )
    if not files and config.sdk_key is None and not config.offline:
        raise ConfigurationError(
            "no flag file and no SDK key: evaluate from a flag file with "
            "--file FLAGS.json (repeatable), or set AIOFLAGS_SDK_KEY (and "
            "AIOFLAGS_BASE_URI and AIOFLAGS_STREAM_URI for a relay proxy or "
            "`aioflags serve`) to ask the flag service"
        )
    async with Client(config) as client:
        status = client.status  # (first: the answer is of the data at this status)
        snapshot = client.snapshot()
        ctx = None
        if snapshot.initialized and snapshot.flag_format(key) is None:
            # No such flag: that is the answer, whatever the context lacks
            # (as OFREP and the OpenFeature provider answer): it is not read.
            from ._client._ofcontext import flagd_context_from

            ctx = flagd_context_from(None, {})
        elif (
            isinstance(context, dict)
            and "kind" not in context
            and snapshot.flag_format(key) == "flagd"
        ):
            # flagd's evaluation context: a targeting key is optional, every
            # other property an attribute under its own name.
            from ._client._ofcontext import ContextError, flagd_context_from

            try:
                ctx = flagd_context_from(context.get("targetingKey"), context)
            except ContextError as exc:
                raise ConfigurationError(f"--context: {exc}") from None
        elif isinstance(context, dict):
            ctx, ignored = read_context(context)
            if ignored:
                logger.warning("--context: %s", written_otherwise(ignored))
        detail = await client.variation_detail(key, ctx, None)
    answer: dict[str, JSONValue] = {
        "key": key,
        "value": detail.value,
        "variationIndex": detail.variation_index,
        "reason": dict(detail.reason),
    }
    if snapshot.flag_format(key) == "flagd":  # its variant's name, as flagd says it
        answer["variant"] = snapshot.openfeature_variant(key, detail)
    answer["status"] = status.name
    print(json.dumps(answer, indent=2))
    return 0 if detail.error_kind is None else 1


def _config_line(url: str) -> str:
    """The ``Config`` that points an app at a flag service at ``url`` (events too)."""
    return (
        f"  Config(sdk_key, base_uri={url!r}, stream_uri={url!r}, events_uri={url!r})"
    )


_SERVE_PORT = 8765
_SERVE_DEFAULT_URL = f"http://127.0.0.1:{_SERVE_PORT}"
#: ``serve --help``'s description: argparse's raw formatter keeps its lines
#: (the Config line must not be wrapped), so they are wrapped here.
_SERVE_DESCRIPTION = f"""\
A local flag service from a flag file, for development and tests. Edits of
the file are pushed to connected clients. Point your app at the URL it
prints, events included (the console's Evaluations log is fed by them; an
app without events_uri sends them to LaunchDarkly). With the default port:

{_config_line(_SERVE_DEFAULT_URL)}

or set AIOFLAGS_BASE_URI, AIOFLAGS_STREAM_URI and AIOFLAGS_EVENTS_URI for
Config.from_env(). The console is at {_SERVE_DEFAULT_URL}/ui/."""


def diff(old: Path, new: Path, contexts: Path, *, as_json: bool) -> int:
    """Print what changing ``old`` into ``new`` does to the contexts; 1 if anything.

    The entries of ``contexts`` that are not contexts are named on stderr and
    skipped. 2 when a file cannot be read, or when ``contexts`` has entries
    but none is a context.
    """
    from ._diff._blast import SKIPPED_SHOWN, diff_files

    try:
        report = diff_files(old, new, contexts)
    except FlagFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"error: {contexts}: cannot read the contexts: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    for skipped in report.skipped[:SKIPPED_SHOWN]:
        print(f"{contexts}:{skipped.line}: skipped: {skipped.error}", file=sys.stderr)
    more = len(report.skipped) - SKIPPED_SHOWN
    if more > 0:
        print(f"{contexts}: {more} more line(s) skipped", file=sys.stderr)
    # Read as LaunchDarkly reads them, the old user JSON's ignored properties
    # are said: once per distinct set (the report counts them all).
    for ignored in report.ignored_sets.values():
        logging.getLogger("aioflags.evaluation").warning(
            "%s: %s", contexts, ignored.message()
        )
    counted = sum(i.count for i in report.ignored_sets.values())
    if report.ignored > counted:
        logging.getLogger("aioflags.evaluation").warning(
            "%s: %d more contexts had other attributes ignored",
            contexts,
            report.ignored - counted,
        )
    if report.skipped and not report.contexts:
        # A report on none of the contexts given would say "flip none".
        print(
            f"error: {contexts}: no context could be read; expected JSON Lines "
            "(one context object a line) or one JSON array of context objects, "
            "in LaunchDarkly's context JSON",
            file=sys.stderr,
        )
        return 2
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.lines():
            print(line)
    return 1 if report.changes else 0


def codegen(
    files: list[Path],
    ld_files: list[Path],
    out: Path,
    *,
    check: bool,
    names: Mapping[str, str] | None = None,
) -> int:
    """Write (or ``check``) the typed accessors of the flags in ``files`` and ``ld_files``.

    0 when written, or current; 1 when ``check`` finds ``out`` stale (the
    diff printed); 2 when a file cannot be read, the flags cannot be typed,
    or ``out`` is no module codegen wrote (left as it is).
    """
    from ._lifecycle._codegen_run import run

    return run(files, ld_files, out, check=check, names=names or {})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aioflags",
        description="aioflags: feature flags for asyncio services.",
        epilog="`python -m aioflags` is the same command.",
    )
    parser.add_argument(
        "--version", action="version", version=f"aioflags {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cmd = commands.add_parser(
        "serve",
        help="serve a flag file (JSON or YAML) on 127.0.0.1",
        description=_SERVE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Each command runs its function (``args.run``), with its own parser to
    # say a usage error (``args.parser``).
    cmd.set_defaults(run=_serve_command, parser=cmd)
    cmd.add_argument(
        "file",
        type=Path,
        help="a flag file in LaunchDarkly's file-data-source shape "
        "(flags, flagValues, segments)",
    )
    cmd.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    cmd.add_argument(
        "--port",
        type=int,
        default=_SERVE_PORT,
        help=f"0 picks a free port (default {_SERVE_PORT})",
    )
    cmd.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding an address other than loopback (the service has no authentication)",
    )
    cmd.add_argument(
        "--lens-secret-file",
        type=Path,
        metavar="F",
        help="the flag lens secret (your app's LensConfig.secrets[0]): the "
        "console then makes lens links (docs/lens.md)",
    )
    cmd.add_argument(
        "--lens-allow",
        action="append",
        default=None,
        metavar="PATTERN",
        help="one of your app's LensConfig.allow patterns (repeatable): a lens "
        "link made for a flag outside them says the app will not override it",
    )
    cmd.add_argument(
        "--limit",
        type=_limit,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one of the service's bounds (aioflags.testing.Limits), again for "
        "each: max_body=128KiB, max_events_body=16MiB, body_timeout=60, ... "
        "(sizes in bytes, KiB or MiB; times in seconds)",
    )

    cmd = commands.add_parser(
        "validate",
        help="check flag files; exit 1 if anything is wrong",
        description="Load flag files as DataSystem.file(), `serve` and `eval "
        "--file` do (the same loader), compile every flag and segment, and say "
        "what is wrong with each. A warning (flagd targeting that can only "
        "fail, which flagd serves all the same) leaves the exit status 0.",
    )
    cmd.add_argument("files", type=Path, nargs="+", help="flag files (JSON or YAML)")
    cmd.set_defaults(run=_validate_command, parser=cmd)

    cmd = commands.add_parser(
        "diff",
        help="which contexts a change of flag files flips; exit 1 if anything changes",
        description="Evaluate every flag of OLD and NEW (flag files, JSON or "
        "YAML) for every context in CONTEXTS and say, per flag, how many contexts "
        "change value and from what to what, with examples and their reasons; "
        "and which flags were added or removed. Exit 0 when nothing changes, 1 "
        "when something does, 2 on an error.",
    )
    cmd.add_argument("old", type=Path, help="the flag file before the change")
    cmd.add_argument("new", type=Path, help="the flag file after the change")
    cmd.add_argument(
        "--contexts",
        required=True,
        type=Path,
        help="JSON Lines (one context a line) or one JSON array of contexts, "
        "in LaunchDarkly's context JSON (entries that are not contexts are "
        "reported and skipped; none usable is an error)",
    )
    cmd.add_argument(
        "--json", action="store_true", help="print the report as one JSON object"
    )
    cmd.set_defaults(run=_diff_command, parser=cmd)

    cmd = commands.add_parser(
        "schema",
        help="print the JSON Schema of flag files (for editors)",
        description="Print the JSON Schema of flag files (flagfile.schema.json, "
        "shipped in the package; with --format flagd, flagd's flag definitions: "
        "flagd.schema.json): save it, and point your editor at it for "
        "completion and checks as you type.",
    )
    cmd.add_argument(
        "--format",
        choices=("launchdarkly", "flagd"),
        default="launchdarkly",
        help="which flag files: LaunchDarkly's shape (the default) or flagd's",
    )
    cmd.set_defaults(run=_schema_command, parser=cmd)

    cmd = commands.add_parser(
        "codegen",
        help="write a typed accessor per flag (a Python module); --check for CI",
        description="Write MODULE.py: a class Flags (on an aioflags.Client) and "
        "a class BlockingFlags (on an aioflags.blocking.Client) with one typed "
        "method per flag, and one *_detail method, typed from the flag's "
        "variations (docs/lifecycle-tools.md). The module passes mypy --strict "
        "and is formatted as ruff format leaves it; the same flags give the "
        "same bytes.",
    )
    cmd.add_argument(
        "files",
        type=Path,
        nargs="*",
        help="flag files (JSON or YAML), as serve reads them",
    )
    cmd.add_argument(
        "--from-ld",
        dest="ld_files",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="LaunchDarkly's flag JSON, the shape of /sdk/latest-all "
        '({"flags": {...}, "segments": {...}}); repeatable',
    )
    cmd.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="MODULE.py",
        help="the module to write",
    )
    cmd.add_argument(
        "--check",
        action="store_true",
        help="write nothing: exit 1 and print a diff when MODULE.py is not "
        "what the flags make now, 0 when it is",
    )
    cmd.add_argument(
        "--name",
        dest="names",
        type=_name,
        action="append",
        default=[],
        metavar="KEY=IDENT",
        help="name flag KEY's methods IDENT (IDENT_detail): for two keys that "
        "would have one name; repeatable",
    )
    cmd.set_defaults(run=_codegen_command, parser=cmd)

    cmd = commands.add_parser(
        "cleanup",
        help="remove a flag from code: its evaluations become VALUE, dead branches go",
        description="Rewrite the Python code under PATHS (default: .) that "
        "evaluates FLAG (client and blocking-client variation methods, "
        "FlagSnapshot, the accessors aioflags codegen writes, the key as a "
        "module constant) as if it always served VALUE, and fold the if/else, "
        "conditional expressions, and/or/not and comparisons that makes dead; "
        "comments and formatting are kept (libcst: pip install "
        "'aioflags[codemod]'). What it cannot prove safe it leaves and lists "
        "with file:line. The evidence is read first: exit 1, nothing changed, "
        "when it shows FLAG serving anything but VALUE, or when there is none "
        "(--force to go without). Every file is rewritten in memory before one "
        "is written, and each only if it is still as read: exit 3 when some are "
        "left as they were, listed (docs/lifecycle-tools.md).",
    )
    cmd.add_argument("flag", help="the flag key")
    cmd.add_argument("paths", type=Path, nargs="*", help="files and directories")
    cmd.add_argument(
        "--keep",
        required=True,
        metavar="VALUE",
        help="the value to keep, as JSON, as eval prints it (true, 3, '\"green\"')",
    )
    cmd.add_argument(
        "--evidence",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a flag coverage JSON (pytest --aioflags-coverage-json) or "
        "client.usage().to_dict() saved as JSON; repeatable",
    )
    cmd.add_argument(
        "--flags",
        dest="flag_files",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a flag file: refuse unless VALUE is one of FLAG's variations "
        "and FLAG serves it to everyone; repeatable",
    )
    cmd.add_argument(
        "--force",
        action="store_true",
        help="rewrite even when the evidence refuses, or with no evidence",
    )
    cmd.add_argument(
        "--dry-run",
        action="store_true",
        help="change nothing: print the rewrite as a unified diff",
    )
    cmd.set_defaults(run=_cleanup_command, parser=cmd)

    cmd = commands.add_parser(
        "eval",
        help="evaluate one flag for a context and print the result as JSON",
        description="Evaluate FLAG from flag files (--file), or from the flag "
        "service that AIOFLAGS_* environment variables describe (see "
        "Config.from_env). Exit 1 if the evaluation ended in an error.",
    )
    cmd.add_argument("flag", help="the flag key")
    cmd.add_argument(
        "--context",
        required=True,
        help="the context: LaunchDarkly's context JSON, @FILE with that JSON, "
        'or a user\'s key, bare or as a JSON string ("user-42") (for a flagd '
        "flag, JSON without "
        '"kind" is flagd\'s evaluation context: a targeting key is optional)',
    )
    cmd.add_argument(
        "--file",
        dest="files",
        type=Path,
        action="append",
        default=[],
        help="a flag file to evaluate from (repeatable); without it, the service",
    )
    cmd.set_defaults(run=_eval_command, parser=cmd)

    cmd = commands.add_parser(
        "plane",
        help="lead the flag plane at PATH for this host's workers (a sidecar)",
        description="Read the flag service that AIOFLAGS_* environment variables "
        "describe (see Config.from_env), or with FLAGD_RESOLVER=in-process the "
        "flagd sync server the FLAGD_* variables describe, and serve its data to "
        "the workers of this host that run DataSystem.default(plane=PATH), or "
        "DataSystem.flagd(..., plane=PATH) with the same source (docs/scaling.md). "
        "While another process leads, it follows, and leads when that one goes. "
        "SIGTERM or Ctrl-C hands over and exits 0. It sends no analytics events.",
    )
    cmd.add_argument(
        "path", help="the plane's Unix socket path, as the workers give it"
    )
    cmd.set_defaults(run=_plane_command, parser=cmd)
    from ._lens._cli import add_commands

    add_commands(commands)
    return parser


def _validate_command(args: argparse.Namespace) -> int:
    return validate(args.files)


def _name(text: str) -> tuple[str, str]:
    """``--name KEY=IDENT`` (a key may hold ``=``: IDENT is after the last)."""
    from ._lifecycle._codegen import name_problem

    key, equals, ident = text.rpartition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=IDENT")
    problem = name_problem(ident)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return key, ident


def _codegen_command(args: argparse.Namespace) -> int:
    if not args.files and not args.ld_files:
        args.parser.error("give flag files, or --from-ld FILE")
    names: dict[str, str] = {}
    for key, ident in args.names:
        if names.setdefault(key, ident) != ident:
            args.parser.error(f"--name: {key!r} is named twice")
    return codegen(
        args.files, args.ld_files, args.output, check=args.check, names=names
    )


def _cleanup_command(args: argparse.Namespace) -> int:
    from ._lifecycle._cleanup_run import cleanup

    return cleanup(
        args.flag,
        args.keep,
        args.paths,
        evidence=args.evidence,
        flag_files=args.flag_files,
        force=args.force,
        dry_run=args.dry_run,
    )


def _diff_command(args: argparse.Namespace) -> int:
    return diff(args.old, args.new, args.contexts, as_json=args.json)


def _schema_command(args: argparse.Namespace) -> int:
    name = "flagd.schema.json" if args.format == "flagd" else "flagfile.schema.json"
    schema = resources.files("aioflags").joinpath(name)
    print(schema.read_text("utf-8"), end="")
    return 0


def _eval_command(args: argparse.Namespace) -> int:
    try:
        context = _context(args.context)
    except (OSError, ValueError, ProtocolError) as exc:
        args.parser.error(f"--context: {exc}")
    try:
        return anyio.run(evaluate, args.flag, context, args.files)
    except AioflagsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _plane_command(args: argparse.Namespace) -> int:
    from ._client._client import Client
    from ._client._config import Config, flagd_from_env
    from ._datasystem._config import DataSystem

    # The data system the workers' Config.from_env() reads: flagd's, with
    # FLAGD_RESOLVER; else the flag service of the SDK key.
    try:
        flagd = flagd_from_env(os.environ, plane=args.path)
        system = flagd if flagd is not None else DataSystem.default(plane=args.path)
        config = Config.from_env(data_system=system, send_events=False)
    except ConfigurationError as exc:
        args.parser.error(str(exc))
    stray = sorted(
        name
        for name, text in os.environ.items()
        if name.startswith("FLAGD_") and name != "FLAGD_RESOLVER" and text.strip()
    )
    unread = (
        f" ({', '.join(stray)} set, but not FLAGD_RESOLVER)"
        if flagd is None and stray
        else ""
    )
    if flagd is None and not config.sdk_key:
        print(
            "error: aioflags plane needs the SDK key (AIOFLAGS_SDK_KEY) to lead for"
            " the workers of one environment, or FLAGD_RESOLVER=in-process with"
            f" FLAGD_HOST and FLAGD_PORT (or FLAGD_SOCKET_PATH) for flagd{unread}",
            file=sys.stderr,
        )
        return 2
    if unread:
        print(
            f"warning: aioflags plane leads for the SDK key's environment{unread}:"
            " set FLAGD_RESOLVER=in-process to lead for flagd instead",
            file=sys.stderr,
        )
    from ._datasystem._plane._lock import PlaneUnusable, check_usable

    try:
        check_usable(args.path)
    except PlaneUnusable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Its role changes are what it has to say.
    logging.getLogger("aioflags.datasource").setLevel(logging.INFO)

    async def lead() -> None:
        # (SIGTERM and Ctrl-C end it cleanly while it starts, too)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with anyio.create_task_group() as group:

                async def stop() -> None:
                    async for _ in signals:
                        group.cancel_scope.cancel()
                        return

                group.start_soon(stop)
                async with Client(config):
                    await anyio.sleep_forever()

    anyio.run(lead)
    return 0


def _limit(text: str) -> tuple[str, int | float]:
    """``--limit NAME=VALUE``: a field of ``Limits`` and its value (KiB, MiB allowed)."""
    fields = {f.name: f for f in dataclasses.fields(Limits)}
    name, equals, value = text.partition("=")
    if not equals or name not in fields:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give NAME=VALUE with NAME one of {', '.join(fields)}"
        )
    whole = fields[name].type == "int"  # (a size or a count; else seconds)
    factor = 1
    for suffix, size in (("KiB", 1024), ("MiB", 1024 * 1024)):
        if whole and value.endswith(suffix):
            value, factor = value.removesuffix(suffix), size
    try:
        number = float(value) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: {name} is a number (sizes may end in KiB or MiB)"
        ) from None
    if not whole:
        return name, number
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r}: {name} is a whole number")
    return name, int(number)


#: glibc's ``mallopt`` parameter for the size from which a block is mapped alone.
_M_MMAP_THRESHOLD = -3


def _give_large_blocks_back() -> None:
    """``serve``'s process: a block of 128 KiB or more goes back to the system when freed.

    glibc's malloc maps such a block on its own and unmaps it when freed,
    but raises that threshold to the size of each one freed (up to 32 MiB):
    after the first 8 MiB event post, each post's copies (its body, its
    text, the list it parses to) came from the heap, which keeps the space
    freed between blocks still in use. Ten 8 MiB posts of ``[{},{},…]``
    left ``serve`` at 222 MB; with the threshold fixed at glibc's default,
    as ``MALLOC_MMAP_THRESHOLD_=131072`` would, at 124 MB
    (``benchmarks/bench_serve_posts.py``). An application configures its
    own process; a FlagServer's leaves malloc as it is. Where that setting
    is the user's (the variable is set), or malloc is not glibc's, nothing.
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - no mallopt (not glibc)
        return
    mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def _bind_host(host: str) -> str:
    """``--host`` as a socket binds it: ``[::1]``, as a URL writes it, is ``::1``.

    Raises:
        ValueError: brackets around something that is no IPv6 address.
    """
    if not host.startswith("["):
        return host
    inside = host[1:].removesuffix("]")
    address = _ip(inside) if host.endswith("]") else None
    if address is None or address.version != 6:
        raise ValueError(f"{host} is not an IPv6 address in brackets (as [::1])")
    return inside


def _serve_command(args: argparse.Namespace) -> int:
    try:
        args.host = _bind_host(args.host)
    except ValueError as exc:
        args.parser.error(f"--host: {exc}")
    if not _is_loopback(args.host) and not args.allow_remote:
        args.parser.error(
            f"refusing to bind {args.host}: it is not a loopback address (use --allow-remote)"
        )
    if args.lens_allow is not None and args.lens_secret_file is None:
        args.parser.error("--lens-allow needs --lens-secret-file")
    if args.lens_allow is not None and not all(args.lens_allow):
        args.parser.error("--lens-allow: a pattern is a flag key or a glob, not empty")
    lens_secret = None
    if args.lens_secret_file is not None:
        from ._lens._cli import read_secret

        try:
            lens_secret = read_secret(args.lens_secret_file)
        except (OSError, ValueError) as exc:
            print(f"error: --lens-secret-file: {exc}", file=sys.stderr)
            return 2
        # Each lens link the console makes is said on stderr (INFO; never
        # its token): who runs `serve` sees what was made with the secret.
        logging.getLogger("aioflags.lens").setLevel(logging.INFO)
    try:
        limits = Limits(**dict(args.limit))
    except ValueError as exc:  # (a bound that is no positive number)
        args.parser.error(f"--limit: {exc}")
    # `serve` is an application, and configures its own process: asyncio's
    # accept errors become one line per episode (a FlagServer in a user's
    # process filters nothing).
    from ._service._hosting import filter_loop_noise

    _give_large_blocks_back()
    try:
        with filter_loop_noise():
            anyio.run(
                serve,
                args.file,
                args.host,
                args.port,
                lens_secret,
                limits,
                args.lens_allow,
            )
    except FlagFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except socket.gaierror as exc:  # (an OSError: before it)
        print(
            f"error: cannot listen on {args.host}: the name does not resolve to an "
            f"address ({exc.strerror or exc}); give an IP address or a name this "
            "machine resolves",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        where = f"{_literal_host(args.host)}:{args.port}"
        if exc.errno == errno.EADDRINUSE:
            why = (
                "the address is in use (pick another with --port, or --port 0 "
                "for a free one)"
            )
        elif exc.errno == errno.EADDRNOTAVAIL:
            why = "this machine has no such address" + (
                " (it has no IPv6 loopback: use 127.0.0.1)"
                if _is_loopback(args.host) and ":" in args.host
                else ""
            )
        elif exc.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need privileges: try --port 0)"
        else:
            raise
        print(f"error: cannot listen on {where}: {why}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped", flush=True)
    except asyncio.CancelledError:
        # On Ctrl-C anyio's runner cancels the main task; without
        # Task.uncancel() (Python 3.10) it cannot tell that cancellation from
        # others and reports it instead of KeyboardInterrupt. Nothing else
        # cancels the main task.
        if hasattr(asyncio.Task, "uncancel"):
            raise
        print("stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line: ``aioflags {serve,validate,diff,codegen,cleanup,eval,schema,plane,lens} ...`` (``--help`` for each)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "command", None) == "cleanup":
        # cleanup FLAG --keep VALUE PATHS...: paths after the options too
        # (argparse stops taking a positional list at the first option).
        paths = [arg for arg in extra if not arg.startswith("-")]
        args.paths += [Path(arg) for arg in paths]
        extra = [arg for arg in extra if arg.startswith("-")]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # The command is an application: aioflags' warnings go to stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    command: Callable[[argparse.Namespace], int] = args.run
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
