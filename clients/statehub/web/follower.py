"""The one subscription of a web process: follows the hub's change feed and feeds the Feed.

It runs the client library's Subscription (the sync algorithm of protocol.md
§5) in a thread of its own and hands every event to the event loop, where the
Feed lives.  Updates extend the log, live or replayed from the hub's history
after a gap or a hub restart (so browsers resume exactly); a rebuild from a
snapshot replaces the state (and every browser resyncs); the hub going down
marks the state down and, when the mirror is newer than what we hold (or we
hold nothing), shows the mirror; once the subscription has caught up, the state
is live again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from statehub.web.feed import Feed, Status

if TYPE_CHECKING:
    from statehub import CaughtUp, Changed, HubDown, Item, MirrorState, Subscription, Synced, Update
    from statehub.web.hub_link import HubSettings

log = logging.getLogger(__name__)

TICK = 0.25  # how often the thread looks at its stop flag


class Follower:
    """Start it once the event loop runs; ``stop()`` ends the thread and closes its sockets."""

    def __init__(self, settings: HubSettings, feed: Feed, loop: asyncio.AbstractEventLoop) -> None:
        self._settings = settings
        self._feed = feed
        self._loop = loop
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="statehub-web-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    # --- the follower thread ----------------------------------------------------------

    def _run(self) -> None:
        with self._settings.client() as client:
            subscription: Subscription = client.subscribe("")
            try:
                while not self._stopping.is_set():
                    event = subscription.next_event(TICK)
                    if event is not None:
                        self._hand_over(subscription, event)
            except Exception:  # a bug here must not leave the page looking live
                log.exception("the follower failed; the page will show the hub as down")
                self._loop.call_soon_threadsafe(self._on_down, "the web server's follower failed", None)
                raise
            finally:
                subscription.close()

    def _hand_over(self, subscription: Subscription, event: Update | Synced | CaughtUp | HubDown) -> None:
        from statehub import CaughtUp, HubDown, Synced, Update

        if isinstance(event, Update):
            self._loop.call_soon_threadsafe(self._on_update, event.epoch, event.rev, event.changes)
        elif isinstance(event, Synced):
            items = list(_synced_items(event, subscription))
            self._loop.call_soon_threadsafe(self._on_synced, event.epoch, event.rev, items, event.reason)
        elif isinstance(event, CaughtUp):
            self._loop.call_soon_threadsafe(self._on_caught_up, event.epoch, event.rev)
        elif isinstance(event, HubDown):
            self._loop.call_soon_threadsafe(self._on_down, event.reason, event.mirror)

    # --- in the event loop ------------------------------------------------------------

    def _on_update(self, epoch: str, rev: int, changes: list[Changed]) -> None:
        feed = self._feed
        if epoch == feed.epoch and rev <= feed.rev:
            return  # replayed after the hub went down, and already in the mirror shown meanwhile
        feed.apply(epoch, rev, changes)

    def _on_caught_up(self, epoch: str, rev: int) -> None:
        feed = self._feed
        if feed.status.state != "live":
            log.info("following the hub again at revision %d", rev)
            feed.mark(Status("live", epoch, max(rev, feed.rev)))

    def _on_synced(self, epoch: str, rev: int, items: list[Item], reason: str) -> None:
        log.info("following the hub at revision %d (%d keys): %s", rev, len(items), reason)
        self._feed.replace(items, Status("live", epoch, rev), reason)

    def _on_down(self, reason: str, mirror: MirrorState | None) -> None:
        log.warning("the hub is down: %s", reason)
        feed = self._feed
        now = time.time()
        if mirror is None:
            feed.mark(Status("down", feed.epoch, feed.rev, reason, now))
            return
        down = Status("down", mirror.epoch, mirror.rev, reason, now, mirror.rev, mirror.written)
        if feed.rev == 0 or mirror.epoch != feed.epoch or mirror.rev > feed.rev:
            feed.replace(mirror.items.values(), down, f"the hub is down; showing its mirror: {reason}")
        else:
            # What we hold is at least as new as the mirror: keep it, and say how old the mirror is.
            feed.mark(Status("down", feed.epoch, feed.rev, reason, now, mirror.rev, mirror.written))


def _synced_items(event: Synced, subscription: Subscription) -> Any:
    """The rebuilt replica: carried by the event where the client library does, else the subscription's."""
    items = getattr(event, "items", None)
    if items is None:
        items = subscription.items
    return list(items.values()) if isinstance(items, dict) else list(items)
