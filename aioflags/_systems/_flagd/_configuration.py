"""flagd's part of the configuration: ``DataSystem.flagd()``'s options, its ``FLAGD_*`` variables, its gRPC's release.

What ``Config.from_env``, ``DataSystem.flagd``, docs/configuration.md's
tables and the client's lifecycle ask flagd's system
(``FlagSystem.configuration``) instead of naming flagd: light to import
(the system registers with ``aioflags``): what it declares and hands
over to is imported when asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from aioflags._core._options import Option
    from aioflags._datasystem._config import DataSystem

__all__ = ["FLAGD_CONFIGURATION", "FlagdConfiguration"]


@final
class FlagdConfiguration:
    """flagd's ``SystemConfiguration``: ``DataSystem.flagd()`` and flagd's provider variables.

    Attributes:
        options: ``DataSystem.flagd()``'s declarations, each with its
            ``FLAGD_*`` variables (``_settings.OPTIONS``).
        preset: ``DataSystem.flagd()``'s body.
    """

    __slots__ = ()

    @property
    def options(self) -> Sequence[Option]:
        """``DataSystem.flagd()``'s declarations (``_settings.OPTIONS``)."""
        from aioflags._systems._flagd._sync._settings import OPTIONS

        return OPTIONS

    @property
    def preset(self) -> Callable[..., DataSystem]:
        """``DataSystem.flagd()``'s body (``_preset.flagd_data_system``)."""
        from ._preset import flagd_data_system

        return flagd_data_system

    def from_environment(
        self, env: Mapping[str, str], *, plane: str | None = None
    ) -> DataSystem | None:
        """With ``FLAGD_RESOLVER=in-process`` (or ``file``), the data system flagd's variables describe."""
        from ._environment import flagd_from_env

        return flagd_from_env(env, plane=plane)

    def unclaimed(self, env: Mapping[str, str]) -> None:
        """Refuse ``FLAGD_*`` variables without ``FLAGD_RESOLVER`` (flagd's providers' rpc)."""
        from ._environment import flagd_without_resolver

        flagd_without_resolver(env)

    def after_block(self) -> None:
        """GRPC's objects of the block's run collected, so that its asyncio engine goes with the event loop."""
        from aioflags._systems._flagd._sync._link import release_grpc

        release_grpc()

    def __repr__(self) -> str:
        return "<flagd's configuration>"


#: flagd's configuration (``Flagd.configuration``).
FLAGD_CONFIGURATION: Final = FlagdConfiguration()
