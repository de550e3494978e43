"""flagd's flag data: its documents read into flag objects, what they share linked back.

It sits below the data system's payloads and store (docs/architecture.md,
"Layers"), which carry flagd's flags in their shared form.
"""
