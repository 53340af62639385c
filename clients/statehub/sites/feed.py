"""A site hub's feed as an uplink needs it: whole revisions after a cursor, or a snapshot to resync from.

The feed is followed through the public client API (``Client.subscribe`` with
``since``), in a thread of its own because a Subscription owns ZeroMQ sockets;
the uplink's asyncio loop asks it for what is there with ``await next_steps()``,
so nothing is read from the hub faster than the broker takes it (the hub
keeps the history; a slow link costs no memory here).

A step is a ``Revision`` to forward, or a ``Snapshot`` of the prefix to
publish as a resync: on the uplink's first start (no cursor), when the hub's
history no longer reaches back to the cursor, or when the hub's epoch changed
(a restored store).  Secrets never leave: their changes and items are dropped
here, and so are keys under ``exclude`` (the fleet keys the centre owns).  A
key that becomes a secret leaves as an unset instead, so its last plain value
does not stay at the centre or on the broker; to know "becomes", the feed keeps
the set of secret keys, from each snapshot and each change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import msgspec

from statehub import CaughtUp, Changed, Client, HubDown, Item, Subscription, Synced, Update

log = logging.getLogger(__name__)

POLL = 0.2  # seconds a call waits for the hub before the loop looks at its own state again
MAX_STEPS = 1000  # steps handed over at once: one thread hop for a thousand revisions while catching up


@dataclass(frozen=True)
class Revision:
    """One site revision with the changes to forward (may be empty: nothing under the prefix is public)."""

    epoch: str
    rev: int
    time: float
    changes: list[Changed]


@dataclass(frozen=True)
class Snapshot:
    """The prefix's state at ``rev``, to publish as a resync (``reason`` says why, for the log and status)."""

    epoch: str
    rev: int
    items: list[Item]
    reason: str


@dataclass(frozen=True)
class Quiet:
    """Nothing new within the poll: ``hub_rev`` is the hub's revision as the feed knows it; ``down`` why not, if so."""

    hub_rev: int
    down: str = ""


Step = Revision | Snapshot | Quiet


@dataclass
class _Tracking:
    hub_rev: int = 0
    down: str = ""
    first: bool = True
    secrets: set[str] = field(default_factory=set)  # the keys that are secrets at the feed's revision


class SiteFeed:
    """The local hub's feed after ``since`` (epoch, rev), minus secrets and ``exclude``d prefixes."""

    def __init__(
        self,
        make_client: Callable[[], Client],
        *,
        prefix: str,
        since: tuple[str, int] | None,
        exclude: tuple[str, ...] = (),
    ) -> None:
        self._make_client = make_client
        self._prefix = prefix
        self._since = since
        self._exclude = exclude
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="site-feed")
        self._client: Client | None = None
        self._subscription: Subscription | None = None
        self._tracking = _Tracking()

    async def next_steps(self) -> list[Step]:
        """What the feed has now (at most MAX_STEPS), waiting up to POLL for the first; [Quiet] when nothing came."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._next_steps)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close)
        self._pool.shutdown(wait=True)

    # --- in the feed's thread ------------------------------------------------------------------

    def _next_steps(self) -> list[Step]:
        subscription = self._open()
        steps: list[Step] = []
        deadline = time.monotonic() + POLL
        while len(steps) < MAX_STEPS:
            left = 0.0 if steps else deadline - time.monotonic()  # after the first step, only what is there
            event = subscription.next_event(max(left, 0.0))
            if event is None:
                if steps or left <= 0:
                    break
                continue
            step = self._step_of(event, subscription)
            if step is not None:
                steps.append(step)
                if isinstance(step, Snapshot):
                    break
        if steps:
            return steps
        self._tracking.hub_rev = max(self._tracking.hub_rev, subscription.rev)
        return [Quiet(self._tracking.hub_rev, self._tracking.down)]

    def _open(self) -> Subscription:
        if self._subscription is None:
            self._client = self._make_client()
            self._subscription = self._client.subscribe(self._prefix, since=self._since)
        return self._subscription

    def _close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
        if self._client is not None:
            self._client.close()
        self._subscription = self._client = None

    def _step_of(self, event: object, subscription: Subscription) -> Step | None:
        if isinstance(event, HubDown):
            self._tracking.down = event.reason
            return None
        self._tracking.down = ""
        if isinstance(event, Update):
            self._tracking.hub_rev = max(self._tracking.hub_rev, event.rev)
            changes = [out for change in event.changes if (out := self._outgoing(change)) is not None]
            when = event.changes[0].time if event.changes else time.time()
            return Revision(event.epoch, event.rev, when, changes)
        if isinstance(event, Synced):
            self._tracking.hub_rev = max(self._tracking.hub_rev, event.rev)
            self._tracking.secrets = {key for key, item in event.items.items() if item.secret}
            first, self._tracking.first = self._tracking.first, False
            if event.resync or (first and self._since is None):
                items = [
                    item for key, item in sorted(event.items.items()) if self._forwarded(key, item.secret)
                ]
                reason = event.reason if event.resync else "the uplink's first start: no cursor yet"
                return Snapshot(event.epoch, event.rev, items, reason)
            return None
        if isinstance(event, CaughtUp):
            self._tracking.hub_rev = max(self._tracking.hub_rev, event.rev, subscription.rev)
        return None

    def _outgoing(self, change: Changed) -> Changed | None:
        """``change`` as it leaves the site: none for a secret's, an unset for a key that just became one."""
        if change.key.startswith(self._exclude):
            return None
        secrets = self._tracking.secrets
        was_secret = change.key in secrets
        if change.op == "set" and change.secret:
            secrets.add(change.key)
        else:
            secrets.discard(change.key)
        if not change.secret:
            return change
        if change.op == "set" and not was_secret and change.prev_rev:  # it held a plain value until now
            return msgspec.structs.replace(change, op="unset", value=None, secret=False)
        return None

    def _forwarded(self, key: str, secret: bool) -> bool:
        return not secret and not key.startswith(self._exclude)
