"""``aioflags lens mint`` and ``aioflags lens inspect``: tokens from the command line."""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aioflags._core._clock import wall_ms
from aioflags._core._exceptions import ConfigurationError

from ._config import secret_bytes
from ._token import Refusal, a_time, jwt, mint, verify
from ._web import fragment_token, with_token

if TYPE_CHECKING:
    from aioflags._core._json import JSONValue

__all__ = ["add_args", "read_secret", "run"]

_TTL = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _ttl(text: str) -> float:
    """``--ttl``: seconds, or a number with s, m, h or d (``30m``)."""
    match = _TTL.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a lifetime: write seconds, or 90s, 30m, 2h, 1d"
        )
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if seconds < 1:
        raise argparse.ArgumentTypeError("a token lives at least 1 second")
    return seconds


def _span(seconds: float) -> str:
    """``seconds`` as ``--ttl`` writes it: ``2h``, ``90m``, ``45s``."""
    for unit in ("d", "h", "m"):
        if seconds >= _UNIT[unit] and seconds % _UNIT[unit] == 0:
            return f"{seconds / _UNIT[unit]:.0f}{unit}"
    return f"{seconds:g}s"


def _flag(text: str) -> tuple[str, JSONValue]:
    """``--flag KEY=VALUE``: the value as JSON when it parses, else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(
            f'{text!r}: write --flag KEY=VALUE (new-checkout=true, search="b")'
        )
    try:
        value: JSONValue = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def read_secret(path: Path) -> bytes:
    """The secret in the file ``path``, read as the app reads it (``secret_bytes``)."""
    try:
        return secret_bytes(path.read_bytes())
    except ConfigurationError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _when(moment: object) -> str:
    """A claim's time as a date, or what is wrong with it (one line, never a traceback)."""
    if not a_time(moment):
        shown = repr(moment)
        if len(shown) > 40:
            shown = f"{shown[:20]}... ({len(shown)} characters)"
        return f"{shown} is not a time (apps refuse the token as malformed)"
    try:
        when = datetime.datetime.fromtimestamp(moment, datetime.timezone.utc)
    except (OverflowError, ValueError, OSError):  # (past year 9999, say)
        return f"{moment!r} seconds since 1970, past the dates Python writes"
    return when.isoformat()


def add_args(lens: argparse.ArgumentParser) -> None:
    """Add ``mint`` and ``inspect`` to the ``aioflags lens`` command's parser."""
    verbs = lens.add_subparsers(
        dest="verb", required=True, metavar="VERB", help="mint or inspect"
    )
    cmd = verbs.add_parser(
        "mint",
        help="print a token (or, with --url, a link that carries it)",
        description="Sign a token with the first secret of the app's "
        "LensConfig.secrets. Each --flag's value is read as JSON when it parses "
        '(true, 3, "b"), else as a string (b).',
    )
    cmd.add_argument(
        "--secret-file",
        type=Path,
        required=True,
        metavar="F",
        help="the secret (the first of the app's LensConfig.secrets)",
    )
    cmd.add_argument(
        "--flag",
        dest="flags",
        type=_flag,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a flag to override (repeatable)",
    )
    cmd.add_argument(
        "--ttl", type=_ttl, default=1800.0, help="its lifetime (default 30m)"
    )
    cmd.add_argument(
        "--max-ttl",
        type=_ttl,
        default=3600.0,
        help="the app's LensConfig.max_ttl (default 1h): a longer --ttl is"
        " refused, as the app would refuse the token",
    )
    cmd.add_argument(
        "--context-key",
        metavar="KEY",
        help="only evaluations of the context with this key",
    )
    cmd.add_argument(
        "--trace", action="store_true", help="responses carry X-Aioflags-Trace"
    )
    cmd.add_argument(
        "--url",
        help="print a one-time link to this page of the app: the token after its #",
    )
    cmd = verbs.add_parser(
        "inspect",
        help="print a token's claims, and with a secret whether it verifies",
        description="Print the token's header and claims (never trusted without "
        "a secret). With --secret-file, say whether it verifies as the app "
        "would (exit 1 if it does not).",
    )
    cmd.add_argument("token", help="the token (or a link that carries one)")
    cmd.add_argument(
        "--secret-file", type=Path, metavar="F", help="a secret to verify with"
    )
    cmd.add_argument(
        "--max-ttl",
        type=_ttl,
        default=3600.0,
        help="the app's LensConfig.max_ttl (default 1h)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``aioflags lens VERB``: 0 on success, 1 for a token that does not verify, 2 on an error."""
    try:
        if args.verb == "mint":
            return _mint(args)
        return _inspect(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _mint(args: argparse.Namespace) -> int:
    if not args.flags and not args.trace:
        raise ValueError("nothing to do: give --flag KEY=VALUE, or --trace")
    if args.ttl > args.max_ttl:  # (a token every app with that max_ttl refuses)
        raise ValueError(
            f"--ttl {_span(args.ttl)} is longer than the app's max_ttl"
            f" ({_span(args.max_ttl)}): the app would refuse the token as expired;"
            " give a shorter --ttl, or --max-ttl if the app's LensConfig.max_ttl"
            " is longer"
        )
    token = mint(
        read_secret(args.secret_file),
        dict(args.flags),
        ttl=args.ttl,
        context_key=args.context_key,
        trace=args.trace,
    )
    print(with_token(args.url, token) if args.url else token)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    token: str = args.token.strip()
    if "://" in token:  # a link: its token, after its "#"
        token = fragment_token(token) or ""
    pyjwt = jwt()
    try:  # (read, not trusted: only a secret verifies it, below)
        header = pyjwt.get_unverified_header(token)
        claims = pyjwt.decode(token, options={"verify_signature": False})
    except pyjwt.InvalidTokenError as exc:
        raise ValueError(f"not a lens token ({exc})") from None
    print(json.dumps({"header": header, "claims": claims}, indent=2))
    if isinstance(claims, dict):
        for name in ("iat", "nbf", "exp"):
            if name in claims:
                print(f"{name}: {_when(claims[name])}")
        exp = claims.get("exp")
        if a_time(exp):
            left = exp - wall_ms() / 1000
            print(f"expires in {left:.0f} s" if left > 0 else "expired")
    if args.secret_file is None:
        print("not verified (give --secret-file to verify)")
        return 0
    verdict = verify(token, [read_secret(args.secret_file)], args.max_ttl)
    if isinstance(verdict, Refusal):
        print(f"refused ({verdict.cause}): {verdict.why}")
        return 1
    print("verifies")
    return 0
