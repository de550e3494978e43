"""OFREP, the OpenFeature Remote Evaluation Protocol, as a plain ASGI app.

``_handler``: the endpoints (single and bulk evaluation, the change
stream) over a ``_source.Source``: a client's snapshots or the local flag
service's data (``_source.DataSource``); ``_request``: what a request's body
asks, mapped for each flag's system. The service mounts it (``/ofrep``); ``aioflags.ofrep``'s
``OFREPApp`` serves it beside any app. Neither needs the other.
"""
