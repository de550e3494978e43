"""Test aids: FlagData builders and the loopback FlagServer (public as ``aioflags.testing``)."""
