"""libzmq's socket-monitor events, read here rather than with pyzmq's helper.

``zmq.utils.monitor`` imports ``zmq.asyncio`` and with it ``asyncio``: ~40 ms
at every start of the hub and of every CLI command, for a two-frame message.
"""

from __future__ import annotations

import struct

_HEADER = struct.Struct("=Hi")  # uint16 event, int32 value, no padding (zmq_socket_monitor)


def monitor_event(frames: list[bytes]) -> tuple[int, int]:
    """The (event, value) of one monitor message: its first frame; the second names our own endpoint."""
    if len(frames) != 2 or len(frames[0]) != _HEADER.size:
        raise ValueError(f"not a ZeroMQ monitor event: {frames!r}")
    event, value = _HEADER.unpack(frames[0])
    return event, value
