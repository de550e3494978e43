"""The local flag service: FDv2/FDv1, events and the console as one ASGI app.

``_server.FlagServer`` (public as ``aioflags.testing.FlagServer``, and what
``aioflags serve`` runs) holds the flags and what it received; ``_app`` is
its ASGI application (Starlette routing, the request pipeline and its
bounds); ``_hosting`` serves it with Hypercorn on the running backend;
``_console`` is the console's logic, ``console/`` its page; ``_wire`` writes
the protocol bodies. Starlette and Hypercorn come with the ``service`` extra.
"""
