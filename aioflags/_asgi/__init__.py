"""Plain ASGI plumbing that the local flag service and OFREP both speak.

``_http``: answers and SSE framing written by hand; ``_limits``: every
bound of the service in one value (``Limits``) and the middleware that
holds request bodies within them; ``_signal``: the change signal a test's
``wait_until`` waits on. No web framework: ``OFREPApp`` needs none.
"""
