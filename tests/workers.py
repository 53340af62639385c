"""Worker processes the integration tests start.

    python -m tests.workers write DIR COUNT [PREFIX]      COUNT sets, one revision each
    python -m tests.workers txns DIR COUNT OPS [PREFIX]   COUNT txns of OPS sets: COUNT * OPS changes
"""

from __future__ import annotations

import sys

from statehub.client import Client
from statehub.hub.protocol import Op


def write(data_dir: str, count: int, prefix: str = "load.") -> None:
    """Set COUNT values as fast as the hub acknowledges them, cycling over 20 keys."""
    with Client(data_dir, timeout=5.0, source="worker") as client:
        for i in range(count):
            client.set(f"{prefix}k{i % 20}", i)


def txns(data_dir: str, count: int, ops: int, prefix: str = "load.") -> None:
    """COUNT txns of OPS sets each (keys k0..k{OPS-1}, every value the change's number): many changes fast."""
    with Client(data_dir, timeout=5.0, source="worker") as client:
        for i in range(count):
            client.txn([Op(op="set", key=f"{prefix}k{n}", value=i * ops + n) for n in range(ops)])


if __name__ == "__main__":
    command, data_dir, *rest = sys.argv[1:]
    if command == "write":
        write(data_dir, int(rest[0]), *rest[1:])
    elif command == "txns":
        txns(data_dir, int(rest[0]), int(rest[1]), *rest[2:])
    else:
        raise SystemExit(f"unknown worker command {command!r}")
