"""The client face: Client, Config, provider status and events, listeners, hooks, the sync face, HTTP.

It owns the task groups that run the data system and analytics (docs/architecture.md).
"""
