"""Blast radius, ``aioflags diff``: which contexts a change of flag files flips.

It reads flag files and evaluates them as any client does (the data
system's loader and store, the evaluation's plain composition); it is no
part of the local flag service, and nothing serves it.
"""
