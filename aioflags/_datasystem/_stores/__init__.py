"""Persistent stores: the Redis store, the sources that read it, the write-through."""
