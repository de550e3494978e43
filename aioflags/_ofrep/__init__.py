"""OFREP, the OpenFeature Remote Evaluation Protocol, as a plain ASGI app.

``_handler``: the endpoints (single and bulk evaluation, the change
stream) over a client's snapshots or the local flag service's data
(``DataSource``). The service mounts it (``/ofrep``); ``aioflags.ofrep``'s
``OFREPApp`` serves it beside any app. Neither needs the other.
"""
