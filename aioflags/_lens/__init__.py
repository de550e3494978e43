"""The flag lens: signed per-request overrides and evaluation traces (``aioflags.lens``).

Its parts: the configuration (``_config``), the tokens (``_token``: JWTs
verified and minted with PyJWT), the runtime a client holds and the view
one request sees through (``_lens``: ``LensStage``, a stage of the one
evaluation, ``_evaluation._pipeline``), what the middleware reads of a request
(``_web``), and how it answers a link (``_link``: its confirm page, ``page/``,
and its one-time redemption). The middleware and ``scope()`` are
``aioflags.lens``'s own.
"""
