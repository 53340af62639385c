"""A live replica of the hub's state, kept by the sync algorithm of docs/protocol.md §5.

Subscribe to everything, wait for a proof that the subscription is live (a
welcome, or any message), take a snapshot, then apply each revision only when it
is the next one and complete.  Anything else — a gap, a new epoch, a heartbeat
ahead of us, silence — rebuilds the replica from a fresh snapshot, visibly: a
``Synced`` event, the ``resyncs`` counter and a log line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import zmq

from statehub.connection import Connection, find_endpoints
from statehub.hub.errors import HubUnavailable, NotFound
from statehub.hub.mirror import MirrorError, MirrorState, read_mirror
from statehub.hub.paths import Layout
from statehub.hub.protocol import (
    PROTOCOL_VERSION,
    Changed,
    Get,
    Heartbeat,
    Item,
    Items,
    Snapshot,
    Welcome,
    published_decoder,
)
from statehub.remote import Remote, secure

log = logging.getLogger(__name__)

SILENT_HEARTBEATS = 3  # this many missed heartbeats mean the hub is gone
TICK = 0.25  # longest wait before housekeeping (silence checks, endpoint changes)
RECEIVE_HWM = 10_000


@dataclass(frozen=True)
class Update:
    """One complete revision that changed keys under the prefix (a txn arrives whole)."""

    rev: int
    epoch: str
    changes: list[Changed]


@dataclass(frozen=True)
class Synced:
    """The replica was (re)built from a snapshot at ``rev``.

    ``items`` is the whole replica then (a copy: the receiver may keep it, even
    in another thread); ``changes`` is how it differs from the replica before
    (empty on the first sync); ``reason`` says why it was rebuilt.
    """

    rev: int
    epoch: str
    reason: str
    first: bool
    changes: list[Changed] = field(default_factory=list)
    items: dict[str, Item] = field(default_factory=dict)


@dataclass(frozen=True)
class HubDown:
    """The hub stopped answering; ``mirror`` is what the mirror file says (None if unreadable)."""

    reason: str
    mirror: MirrorState | None


# What a subscription hands out.  A consumer that keeps its own replica needs
# only these: start from ``Synced.items``, apply each ``Update`` with
# ``apply_change``, and show the mirror on ``HubDown``.
Event = Update | Synced | HubDown


class Subscription:
    """A live replica of the keys under ``prefix``; get one from ``Client.subscribe``.

    Iterate it (or call ``next_event``) in one thread: it owns its sockets.  Its
    state is public and read-only for callers: ``items`` (the replica), ``rev``
    and ``epoch`` (what it holds), ``is_live`` and ``resyncs``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        prefix: str = "",
        rpc: str | None = None,
        events: str | None = None,
        timeout: float = 0.5,
        remote: Remote | None = None,
    ) -> None:
        self.prefix = prefix
        self.items: dict[str, Item] = {}
        self.rev = 0
        self.epoch = ""
        self.resyncs = 0
        self.is_live = False
        self._data_dir = data_dir
        self._remote = remote  # a hub on another machine: its endpoints and CURVE keys
        self._explicit = (rpc, events) if remote is None else (remote.rpc, remote.events)
        self._timeout = timeout
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._connection = Connection(self._context, data_dir, rpc=rpc, timeout=timeout, remote=remote)
        self._decode = published_decoder().decode
        self._sub: zmq.Socket[bytes] | None = None
        self._sub_endpoint = ""
        self._synced_once = False
        self._down_reported = False
        self._assembling: list[Changed] = []
        self._interval = 1.0
        self._since = time.monotonic()  # last message heard, or when we started waiting
        self._next_endpoint_check = 0.0
        self._events: deque[Event] = deque()

    # --- the public face ----------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        event = self.next_event()
        assert event is not None
        return event

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most ``timeout`` seconds (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._events:
            wait = TICK if deadline is None else min(TICK, deadline - time.monotonic())
            if wait <= 0:
                return None
            self._step(wait)
        return self._events.popleft()

    def close(self) -> None:
        self._connection.close()
        self._context.destroy(linger=0)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- one turn -----------------------------------------------------------------

    def _step(self, wait: float) -> None:
        sub = self._ensure_sub()
        if sub is None:
            self._go_down("the hub is not running (no hub.json)")
            time.sleep(wait)
            return
        if sub.poll(int(wait * 1000), zmq.POLLIN):
            for _ in range(1000):  # drain what is queued, but let housekeeping run
                try:
                    topic, body = sub.recv_multipart(zmq.NOBLOCK)[:2]
                except (zmq.Again, ValueError):
                    break
                self._receive(body)
        self._housekeeping()

    def _receive(self, body: bytes) -> None:
        try:
            message = self._decode(body)
        except msgspec.MsgspecError:
            return  # a kind this client does not know (protocol §9): ignorable
        self._since = time.monotonic()
        if not self.is_live:
            self._sync("start" if not self._synced_once else "the hub is back")
            if not self.is_live:
                return
            if isinstance(message, Changed):
                self._on_changed(message)  # it may be newer than the snapshot
            return
        if isinstance(message, Changed):
            self._on_changed(message)
        else:
            self._on_beat(message)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        silent = now - self._since
        if self.is_live and silent > SILENT_HEARTBEATS * self._interval:
            self._go_down(f"no heartbeat for {silent:.1f} s")
        elif not self.is_live and silent > self._timeout:
            self._go_down(f"no welcome from the hub within {self._timeout:g} s")
        if not self.is_live and now >= self._next_endpoint_check:
            self._next_endpoint_check = now + 1.0
            self._follow_endpoint()

    # --- the sync algorithm ---------------------------------------------------------

    def _on_changed(self, change: Changed) -> None:
        if change.epoch != self.epoch:
            self._sync(f"the hub's epoch changed from {self.epoch} to {change.epoch}")
            return
        if change.rev <= self.rev:
            return  # already in the snapshot
        if self._assembling:
            last = self._assembling[-1]
            expected = change.rev == last.rev and change.index == last.index + 1 and change.count == last.count
        else:
            expected = change.rev == self.rev + 1 and change.index == 0
        if not expected:
            self._sync(f"gap: expected revision {self.rev + 1}, got {change.rev} part {change.index + 1}/{change.count}")
            return
        self._assembling.append(change)
        if change.index == change.count - 1:
            self._apply(self._assembling)
            self._assembling = []

    def _on_beat(self, beat: Heartbeat | Welcome) -> None:
        self._interval = beat.interval
        if beat.epoch != self.epoch:
            self._sync(f"the hub's epoch changed from {self.epoch} to {beat.epoch}")
        elif beat.rev > self.rev:
            # The hub publishes every part of a revision before any later heartbeat.
            self._sync(f"missed revisions {self.rev + 1}..{beat.rev} (the hub is at {beat.rev})")

    def _apply(self, changes: list[Changed]) -> None:
        relevant = [self._complete(c) for c in changes if c.key.startswith(self.prefix)]
        for change in relevant:
            apply_change(self.items, change)
        self.rev = changes[0].rev
        if relevant:
            self._events.append(Update(self.rev, self.epoch, relevant))

    def _complete(self, change: Changed) -> Changed:
        """A change whose large value was left out of the stream, with the value fetched.

        The fetched item may be newer than the change (the key moved on since);
        its own later change will then agree with it.  A key already deleted
        again keeps ``value_omitted``: its unset follows.
        """
        if not change.value_omitted:
            return change
        try:
            reply = self._connection.call(Get(v=PROTOCOL_VERSION, key=change.key), Item)
        except NotFound:
            return change
        except HubUnavailable:
            self._go_down(f"could not fetch the large value of {change.key!r}")
            return change
        return msgspec.structs.replace(
            change, value=reply.value, value_omitted=False, rev=reply.rev, time=reply.time, source=reply.source, user=reply.user
        )

    def _sync(self, reason: str) -> None:
        try:
            reply = self._connection.call(
                Snapshot(v=PROTOCOL_VERSION, prefix=self.prefix), Items, timeout=max(5.0, 10 * self._timeout)
            )
        except HubUnavailable as exc:
            self._go_down(f"snapshot failed: {exc.message}")
            return
        first = not self._synced_once
        new_items = {item.key: item for item in reply.items}
        changes = [] if first else _diff(self.items, new_items, reply.rev, reply.epoch)
        self.items, self.rev, self.epoch = new_items, reply.rev, reply.epoch
        self._assembling = []
        self.is_live = True
        self._down_reported = False
        self._synced_once = True
        self._since = time.monotonic()
        if first:
            log.info("synced at revision %d (%d keys)", reply.rev, len(new_items))
        else:
            self.resyncs += 1
            log.warning("resynced at revision %d: %s (resync #%d)", reply.rev, reason, self.resyncs)
        self._events.append(Synced(reply.rev, reply.epoch, reason, first, changes, dict(new_items)))

    def _go_down(self, reason: str) -> None:
        self.is_live = False
        self._assembling = []
        self._since = time.monotonic()
        if self._down_reported:
            return
        self._down_reported = True
        log.warning("hub down: %s", reason)
        self._events.append(HubDown(reason, self._read_mirror()))

    def _read_mirror(self) -> MirrorState | None:
        try:
            return read_mirror(Layout(self._data_dir).mirror)
        except (MirrorError, OSError):
            return None

    # --- sockets ------------------------------------------------------------------

    def _ensure_sub(self) -> zmq.Socket[bytes] | None:
        if self._sub is None:
            endpoints = find_endpoints(self._data_dir, *self._explicit)
            if endpoints is None:
                return None
            self._open_sub(endpoints.events)
        return self._sub

    def _open_sub(self, endpoint: str) -> None:
        if self._sub is not None:
            self._sub.close(linger=0)
        sub = self._context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        secure(sub, self._remote)
        sub.connect(endpoint)
        self._sub, self._sub_endpoint = sub, endpoint
        self._since = time.monotonic()

    def _follow_endpoint(self) -> None:
        """A hub that restarted may have bound new endpoints: follow hub.json."""
        endpoints = find_endpoints(self._data_dir, *self._explicit)
        if endpoints is not None and endpoints.events != self._sub_endpoint:
            self._open_sub(endpoints.events)


def apply_change(items: dict[str, Item], change: Changed) -> None:
    """Apply one published change to a replica of items (keeps a key's created revision)."""
    if change.op == "unset" or change.value_omitted:
        # An omitted value that could not be fetched: the key is gone again, or
        # the hub is, and a resync follows.  Never hold a made-up value.
        items.pop(change.key, None)
        return
    previous = items.get(change.key)
    items[change.key] = Item(
        key=change.key,
        value=change.value,
        rev=change.rev,
        created_rev=previous.created_rev if previous else change.rev,
        time=change.time,
        source=change.source,
        user=change.user,
    )


def _diff(old: dict[str, Item], new: dict[str, Item], rev: int, epoch: str) -> list[Changed]:
    """The changes that turn replica ``old`` into ``new``, one per key that differs."""
    changes = []
    for key, item in new.items():
        before = old.get(key)
        if before is None or before.rev != item.rev or before.value != item.value:
            changes.append(_as_change(item, epoch))
    for key in old.keys() - new.keys():
        gone = Changed(epoch=epoch, rev=rev, index=0, count=1, key=key, op="unset", time=time.time())
        changes.append(gone)
    return changes


def _as_change(item: Item, epoch: str) -> Changed:
    return Changed(
        epoch=epoch,
        rev=item.rev,
        index=0,
        count=1,
        key=item.key,
        op="set",
        value=item.value,
        time=item.time,
        source=item.source,
        user=item.user,
    )


class SubscriptionThread(threading.Thread):
    """Runs a Subscription in its own thread and hands each event to ``callback`` there.

    ``Client.subscribe(prefix, callback)`` starts one; ``stop()`` ends it.  The
    callback gets everything it needs in the event (``Synced.items``), so it
    never has to reach into the subscription, which belongs to this thread.
    """

    def __init__(self, make: Callable[[], Subscription], callback: Callable[[Event], Any]) -> None:
        super().__init__(name="statehub-subscription", daemon=True)
        self._make = make
        self._callback = callback
        self._stopping = threading.Event()

    def run(self) -> None:
        subscription = self._make()
        try:
            while not self._stopping.is_set():
                event = subscription.next_event(TICK)
                if event is None:
                    continue
                try:
                    self._callback(event)
                except Exception:
                    log.exception("subscription callback failed on %r", event)
        finally:
            subscription.close()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stopping.set()
        self.join(timeout)
