"""flagd's source on the flag plane: the sync server and what it is asked with, in words."""

from __future__ import annotations

__all__ = ["plane_source"]


def plane_source(
    target: str, selector: str | None, provider_id: str | None, fractional: int
) -> str:
    """A flagd data system's source as words: what its plane's processes must share.

    The sync server (``host:port``, or ``unix:PATH``), the selector and
    the provider id it is asked with, and the ``fractional`` bucketing
    its flags are evaluated with: two apps that differ in any of these
    must not serve each other's flags. Then the form its flags travel in:
    what they share written once ("evaluators shared",
    ``_data/_definitions.py``), which an aioflags from before that cannot
    read, so that its processes and these never share a plane. Quoted as
    Python does (``ascii``), so that it is one line of ASCII whatever it
    holds. The plane carries them as they are (``Plane.source``), and
    hashes them with the system's name (``_wire.environment_of``).
    """
    said = [f"selector {selector!a}"] if selector else []
    if provider_id:
        said.append(f"provider id {provider_id!a}")
    said.append(f"fractional v{fractional}")
    said.append("evaluators shared")
    where = ascii(target)[1:-1]  # (its escapes, without the quotes)
    return f"flagd at {where} ({', '.join(said)})"
