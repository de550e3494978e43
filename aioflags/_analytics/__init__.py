"""Analytics events (events.md): what LaunchDarkly's event recorder receives.

- ``_recorder``: the synchronous half, on the evaluation path: evaluations,
  custom and identify events go into a bounded buffer and an in-place
  summary; no I/O, next to no allocation.
- ``_format``: turns a taken buffer into LaunchDarkly's JSON events, with
  private attributes redacted.
- ``_summary``: writes the summary event's JSON text straight from the
  counters a flush takes (``_format``'s dict form is its reference).
- ``_mend``: values that are not JSON, sent as ``null`` and named once.
- ``_usage`` and ``_metrics``: each flush folds the counters it takes into
  the client's lifetime totals (``client.usage()``) and, with
  ``Config.metrics``, into evaluation metrics.
- ``_processor``: the asynchronous half: one task group, owned by the
  :class:`~aioflags._analytics._processor.EventProcessor` async context
  manager, flushes the buffer to ``{events_uri}/bulk`` and sends diagnostics.
"""
