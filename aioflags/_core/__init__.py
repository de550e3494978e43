"""What every layer uses: value classes, JSON, clocks, pacing, the lifespan task group, exceptions.

Nothing here imports the layers above at run time (docs/architecture.md).
"""
