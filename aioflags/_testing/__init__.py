"""Test aids: FlagData builders (public, with ``_service``'s FlagServer, as ``aioflags.testing``)."""
