"""flagd's sync protocol (``flagd.sync.v1``): its generated messages and the source over gRPC.

Nothing here is imported unless a flagd data system runs (or the test
server starts): gRPC and protobuf are the ``flagd`` extra's.
"""
