"""The local flag service: FDv2/FDv1, events and the console as one ASGI app.

``_server.FlagServer`` (public as ``aioflags.testing.FlagServer``, and what
``aioflags serve`` runs) composes its parts: ``_flagset`` (the versioned
data), ``_fanout`` (the open streams), ``_recorder`` (what it received) and
``_faults`` (a test's planned misbehaviour). ``_app`` is its Starlette
application: the middlewares of ``_middleware`` and ``aioflags._asgi``'s
``_limits`` around the SDK routes, OFREP (``aioflags._ofrep``, mounted) and
the console (``_console_app`` over ``_console``'s state, ``console/`` its
page); ``_hosting`` serves it with Hypercorn on the running backend;
``_wire`` writes the protocol bodies (its framing is ``aioflags._asgi``'s).
Starlette and Hypercorn come with the ``service`` extra. See
docs/architecture.md, "The flag service".
"""
