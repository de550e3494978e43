"""Evaluation: contexts, the flag model and its compiler, operators, snapshots, results.

Pure and synchronous: no I/O, no tasks (docs/architecture.md).
"""
