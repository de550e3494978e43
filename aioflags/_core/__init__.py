"""What every layer uses: value classes, JSON, clocks, pacing, the lifespan task group, exceptions, settings, the checks of options.

Nothing here imports the layers above, not even for annotations: the layers
above hand their objects down typed by the protocols here (``Clock``,
``Settings``; docs/architecture.md).
"""
