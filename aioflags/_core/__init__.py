"""What every layer uses: value classes, JSON, clocks, pacing, the lifespan task group, HTTP, exceptions.

Nothing here knows about flags or sources (docs/architecture.md).
"""
