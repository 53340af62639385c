"""Log lines for faults that repeat: the first at once, then one a minute with a count.

A hub on a Pi must not fill its disk with one line per heartbeat (or per
handshake a refused client retries every 100 ms) while a fault lasts, yet an
operator must see the fault at once, see that it is still there, and see
when it has cleared.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable

REPEAT_INTERVAL = 60.0  # seconds between two lines about the same ongoing fault
MAX_TRACKED = 1000  # bounds memory when the kinds are many (someone spraying keys at a port)


class RateLimitedLog:
    """Rate-limits log lines per kind of fault.  Used by one thread."""

    def __init__(self, logger: logging.Logger, interval: float = REPEAT_INTERVAL) -> None:
        self._log = logger
        self._interval = interval
        self._seen: dict[Hashable, tuple[float, int]] = {}  # kind -> (last logged, held back since)

    def report(self, kind: Hashable, level: int, message: str, *, exc_info: bool = False) -> None:
        """Log ``message`` unless a line of this ``kind`` went out less than an interval ago."""
        now = time.monotonic()
        last, held_back = self._seen.get(kind, (0.0, 0))
        if last and now - last < self._interval:
            self._seen[kind] = (last, held_back + 1)
            return
        if len(self._seen) >= MAX_TRACKED:
            self._seen.clear()
        self._seen[kind] = (now, 0)
        again = f" ({held_back} more times in the last minute)" if held_back else ""
        self._log.log(level, "%s%s", message, again, exc_info=exc_info)

    def clear(self, kind: Hashable) -> bool:
        """Forget ``kind``: its fault is over.  True if it had been reported (so its end is news)."""
        return self._seen.pop(kind, None) is not None
