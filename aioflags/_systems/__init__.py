"""Flag systems: one object per kind of flag, held by each compiled flag, asked by every face (issue 96).

LaunchDarkly's system (``_launchdarkly``) and flagd's (``_flagd``), each a
package of its own, register here in one line each; the evaluation holds
the protocol and the registry (``aioflags._evaluation._model``), so a
flag compiled anywhere gets its system. The faces (OFREP, the OpenFeature
provider, the console's words, coverage) ask ``flag.system`` what they
used to decide by testing the word ``"flagd"``.
"""

from __future__ import annotations

from aioflags._evaluation._model import (
    FlagSystem,
    default_system,
    register,
    registered,
    system_named,
    system_of,
    unregister,
)

from ._flagd import FLAGD
from ._launchdarkly import LAUNCHDARKLY

__all__ = [
    "FLAGD",
    "LAUNCHDARKLY",
    "FlagSystem",
    "default_system",
    "register",
    "registered",
    "system_named",
    "system_of",
    "unregister",
]

register(LAUNCHDARKLY)
register(FLAGD)
