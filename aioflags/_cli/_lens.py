"""``aioflags lens mint`` / ``aioflags lens inspect``: flag lens tokens (docs/lens.md).

The verbs and what they run are the lens's own (``aioflags._lens._cli``).
"""

from __future__ import annotations

from aioflags._lens._cli import add_args, run

from ._command import Command

COMMAND = Command(
    name="lens",
    help="mint and inspect flag lens tokens (docs/lens.md)",
    description="Tokens for the flag lens: a request that carries one sees "
    "its flag values (pip install 'aioflags[lens]').",
    add_args=add_args,
    run=run,
)
