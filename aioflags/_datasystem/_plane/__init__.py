"""The flag plane: the processes of one host share one upstream (docs/scaling.md).

Processes given the same plane path elect a leader by an exclusive
``flock`` on ``PATH.lock`` (:mod:`._lock`). The leader alone runs the
configured data system, and serves its data to the others over a Unix
socket at ``PATH`` (:mod:`._leader`): the full data set on connect, then
each change set as it applies it, and its data-source status. A follower's
data system is one source reading that socket (:mod:`._follower`), whose
change sets go through the same FDv2 event code and the same store as a
network source's. When the leader goes, the OS frees its lock and a
follower takes its place. The wire is :mod:`._wire`.
"""
