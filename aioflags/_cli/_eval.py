"""``aioflags eval FLAG --context JSON``: evaluate one flag from flag files or the flag service; print the value, the variation and the reason as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from aioflags._core._exceptions import AioflagsError, ConfigurationError, ProtocolError
from aioflags._core._json import parse

from ._command import Command, fail

if TYPE_CHECKING:
    import argparse

    from aioflags._core._json import JSONValue
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._model import FlagSystem


def add_args(parser: argparse.ArgumentParser) -> None:
    """``eval``'s arguments: the flag, ``--context``, ``--file``."""
    parser.add_argument("flag", help="the flag key")
    parser.add_argument(
        "--context",
        required=True,
        help="the context: LaunchDarkly's context JSON, @FILE with that JSON, "
        'or a user\'s key, bare or as a JSON string ("user-42") (for a flag '
        'of another flag system, JSON without "kind" is that system\'s '
        "evaluation context, as OFREP's body has it)",
    )
    parser.add_argument(
        "--file",
        dest="files",
        type=Path,
        action="append",
        default=[],
        help="a flag file to evaluate from (repeatable); without it, the service",
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate ``args.flag``: 0, 1 when the evaluation ended in an error, 2 when it could not run."""
    try:
        context = _context(args.context)
    except (OSError, ValueError, ProtocolError) as exc:
        args.parser.error(f"--context: {exc}")
    import anyio

    try:
        return anyio.run(evaluate, args.flag, context, args.files)
    except AioflagsError as exc:
        return fail(str(exc), 2)


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
    from aioflags._client._client import Client
    from aioflags._client._config import Config
    from aioflags._datasystem._config import DataSystem
    from aioflags._evaluation._context import logger, read_context, written_otherwise

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
            ctx = _empty_context()
        elif (
            isinstance(context, dict)
            and "kind" not in context
            and (system := _own_system(snapshot.flag_format(key))) is not None
        ):
            # The flag's system's evaluation context (flagd's: a targeting
            # key is optional, every other property an attribute under its
            # own name), as OFREP reads a body for it.
            from aioflags._client._ofcontext import ContextError

            try:
                ctx = system.context_from(context.get("targetingKey"), context)
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
    if _own_system(snapshot.flag_format(key)) is not None:
        # its variant's name, as its system says it (flagd's: the variant)
        answer["variant"] = snapshot.openfeature_variant(key, detail)
    answer["status"] = status.name
    print(json.dumps(answer, indent=2))
    return 0 if detail.error_kind is None else 1


def _empty_context() -> Context:
    """A context of nothing, for a flag that does not exist: the first system's that needs no key.

    (flagd's: no targeting key, no attributes.) With no such system, a
    context whose key says what it is for.
    """
    from aioflags._client._ofcontext import ContextError
    from aioflags._evaluation._context import Context
    from aioflags._evaluation._model import registered

    for system in registered():
        try:
            return system.context_from(None, {})
        except ContextError:  # noqa: PERF203 - once per command, a system or two
            continue
    return Context.create("aioflags-eval")


def _own_system(name: str | None) -> FlagSystem | None:
    """The flag system called ``name``, unless LaunchDarkly's (the default) or none."""
    from aioflags._evaluation._model import default_system, system_named

    system = None if name is None else system_named(name)
    return None if system is None or system is default_system() else system


COMMAND = Command(
    name="eval",
    help="evaluate one flag for a context and print the result as JSON",
    description="Evaluate FLAG from flag files (--file), or from the flag "
    "service that AIOFLAGS_* environment variables describe (see "
    "Config.from_env). Exit 1 if the evaluation ended in an error.",
    add_args=add_args,
    run=run,
)
