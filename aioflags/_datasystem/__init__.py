"""The data system: sources feed the supervisor, which applies change sets to the store.

Its parts, lowest first: change-set values and payload parsing, network and
file sources, persistent stores, the in-memory store, the supervisor and the
``DataSystem`` configuration (docs/architecture.md).
"""
