"""Quickstart placeholder: evaluates a sample flag set locally.

The client with live updates arrives with the client issue; this script then
becomes the full story (server, streaming, live change, FDv1 fallback).
"""

from __future__ import annotations

from aioflags import Context
from aioflags._store import snapshot_from_data

FLAGS = {
    "new-checkout": {
        "key": "new-checkout",
        "version": 1,
        "on": True,
        "variations": [True, False],
        "offVariation": 1,
        "fallthrough": {"variation": 1},
        "rules": [
            {
                "id": "beta",
                "variation": 0,
                "clauses": [{"attribute": "plan", "op": "in", "values": ["beta"]}],
            }
        ],
    }
}


def main() -> None:
    snapshot = snapshot_from_data(FLAGS)
    for ctx in (
        Context.create("alice", attributes={"plan": "beta"}),
        Context.create("bob"),
    ):
        detail = snapshot.variation_detail("new-checkout", ctx, False)
        print(f"new-checkout for {ctx.key}: {detail.value} ({detail.reason['kind']})")


if __name__ == "__main__":
    main()
