"""Worker processes the integration tests start: ``python -m tests.workers write DIR COUNT [PREFIX]``."""

from __future__ import annotations

import sys

from statehub.client import Client


def write(data_dir: str, count: int, prefix: str = "load.") -> None:
    """Set COUNT values as fast as the hub acknowledges them, cycling over 20 keys."""
    with Client(data_dir, timeout=5.0, source="worker") as client:
        for i in range(count):
            client.set(f"{prefix}k{i % 20}", i)


if __name__ == "__main__":
    command, data_dir, count, *rest = sys.argv[1:]
    assert command == "write", command
    write(data_dir, int(count), *rest)
