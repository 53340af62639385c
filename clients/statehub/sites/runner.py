"""Running a long-lived link process: an asyncio loop that a signal stops cleanly.

SIGTERM (systemd, docker stop) and SIGINT (Ctrl-C) only set the stop event; the
uplink or follower finishes what is in flight, saves its cursor and returns.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any


def run_until_signalled(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run ``main(stop)`` in a new event loop until it returns; SIGTERM and SIGINT set ``stop``."""

    async def wrapper() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await main(stop)

    asyncio.run(wrapper())
