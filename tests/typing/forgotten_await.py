"""A forgotten ``await`` fails type checking (docs/quickstart.md), pinned: never run.

Each line below is the mistake, with the error the checkers must report
ignored (``client.variation`` is a coroutine at run time, refused by the
checkers alone; the other methods' results raise ``TypeError`` too): were mypy (with ``truthy-bool``, as docs/quickstart.md says) or
pyright (with ``reportUnnecessaryComparison``) to stop reporting it, the
ignore would be unused, and that is an error too (mypy's
``warn_unused_ignores``, pyright's ``reportUnnecessaryTypeIgnoreComment``).
"""

# pyright: reportUnnecessaryComparison=true, reportUnnecessaryTypeIgnoreComment=true

from __future__ import annotations

import aioflags


async def forgot(client: aioflags.Client, user: aioflags.Context) -> None:
    if client.bool_variation("f", user, False):  # type: ignore[truthy-bool]
        print("every user gets here")
    if client.variation("f", user, False):  # type: ignore[truthy-bool]
        print("every user gets here too")
    if client.string_variation("f", user, "") == "x":  # type: ignore[comparison-overlap]
        print("no user gets here")
    if client.variation_detail("f", user, None).value:  # type: ignore[attr-defined]
        print("nor here")
    client.track("checkout", user)  # (not an evaluation: nothing to await)
