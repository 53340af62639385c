"""A live replica of the hub's state, kept by the sync algorithm of docs/protocol.md §5.

Subscribe to everything, wait for a proof that the subscription is live (a
welcome, or any message), take a snapshot, then apply each revision only when it
is the next one and complete.  A gap, a heartbeat ahead of us, a reconnect or a
hub restart replays the missed revisions from the hub's history (the change
feed), so a consumer sees every revision in order.  Only a new epoch, or history
that no longer reaches back, rebuilds the replica from a snapshot, visibly: a
``Synced`` event with ``resync`` set, the ``resyncs`` counter and a log line.

The rules are ``statehub.replica`` (pure, shared with the Rust crate through
tests/vectors/sync.json); this module drives them with sockets and a clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import zmq

from statehub.connection import Connection, find_endpoints
from statehub.hub.errors import HubUnavailable, InvalidRequest, StatehubError
from statehub.hub.mirror import MirrorError, MirrorState, read_mirror
from statehub.hub.paths import Layout
from statehub.hub.protocol import (
    PROTOCOL_VERSION,
    Changed,
    ChangePage,
    Changes,
    Item,
    Items,
    Snapshot,
    published_decoder,
)
from statehub.remote import Remote, secure
from statehub.replica import CaughtUp, Cause, Fetch, Outcome, Replica, Resync, Synced, Update

log = logging.getLogger(__name__)

SILENT_HEARTBEATS = 3  # this many missed heartbeats mean the hub is gone
TICK = 0.25  # longest wait before housekeeping (silence checks, endpoint changes)
RECEIVE_HWM = 10_000
# A poll that returns this much later than asked was not listening all that time (the process
# was stopped, or starved of CPU): it counts for nothing toward silence (issue 13, item 11).
PAUSE_SLACK = 0.5


@dataclass(frozen=True)
class HubDown:
    """The hub stopped answering; ``mirror`` is what the mirror file says (None if unreadable)."""

    reason: str
    mirror: MirrorState | None


# What a subscription hands out.  A consumer that keeps its own replica needs
# only these: start from ``Synced.items``, apply each ``Update`` with
# ``apply_change``, and show the mirror on ``HubDown`` until ``CaughtUp`` or ``Synced``.
Event = Update | Synced | CaughtUp | HubDown


class _Start:
    """The first thing to do once the hub answers: a snapshot, or resuming after ``since``."""


class Subscription:
    """A live replica of the keys under ``prefix``; get one from ``Client.subscribe``.

    Iterate it (or call ``next_event``) in one thread: it owns its sockets.  Its
    state is public and read-only for callers: ``items`` (the replica), ``rev``
    and ``epoch`` (what it holds), ``is_live``, ``resyncs`` (snapshot rebuilds
    that lost revisions) and ``replayed`` (revisions replayed from history).

    ``since=(epoch, rev)`` resumes after a revision seen before (a consumer's
    own restart): the replica is rebuilt as of ``rev`` and every later revision
    replayed.  If that history is gone, or the hub's epoch is not ``epoch``
    (``""``: any), the first ``Synced`` is a resync instead, and says why.
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
        since: tuple[str, int] | None = None,
    ) -> None:
        self.prefix = prefix
        self.resyncs = 0
        self.replayed = 0
        self.is_live = False
        self._replica = Replica(prefix)
        self._since = since
        self._data_dir = data_dir
        self._remote = remote  # a hub on another machine: its endpoints and CURVE keys
        self._explicit = (rpc, events) if remote is None else (remote.rpc, remote.events)
        self._timeout = timeout
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._connection = Connection(self._context, data_dir, rpc=rpc, timeout=timeout, remote=remote)
        self._decode = published_decoder().decode
        self._sub: zmq.Socket[bytes] | None = None
        self._sub_endpoint = ""
        self._down_reported = False
        self._todo: Fetch | Resync | _Start | None = None  # a request to make before reading on
        self._interval = 1.0
        self._quiet = 0.0  # seconds spent listening since the last word from the hub
        self._next_endpoint_check = 0.0
        self._events: deque[Event] = deque()

    @property
    def items(self) -> dict[str, Item]:
        """The replica: every key under the prefix as of ``rev`` (do not modify it)."""
        return self._replica.items

    @property
    def rev(self) -> int:
        return self._replica.rev

    @property
    def epoch(self) -> str:
        return self._replica.epoch

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
        if self._todo is not None:
            # One request a turn: a long catch-up hands out each page's events before the next.
            todo, self._todo = self._todo, None
            self._do(todo)
            return
        sub = self._ensure_sub()
        if sub is None:
            self._go_down("the hub is not running (no hub.json)")
            time.sleep(wait)
            return
        began = time.monotonic()
        ready = sub.poll(int(wait * 1000), zmq.POLLIN)
        listened = time.monotonic() - began
        if listened <= wait + PAUSE_SLACK:
            self._quiet += listened
        if ready:
            for _ in range(1000):  # drain what is queued, but let housekeeping run
                try:
                    topic, body = sub.recv_multipart(zmq.NOBLOCK)[:2]
                except (zmq.Again, ValueError):
                    break
                self._receive(body)
                if self._todo is not None:
                    break  # what follows in the socket waits until the request is answered
        self._housekeeping()

    def _receive(self, body: bytes) -> None:
        try:
            message = self._decode(body)
        except msgspec.MsgspecError:
            return  # a kind this client does not know (protocol §9): ignorable
        self._quiet = 0.0
        if not isinstance(message, Changed):
            self._interval = message.interval
        if not self.is_live:
            # The hub answers again: it proved our subscription live.  Whatever this message
            # says, the snapshot or the catch-up that follows covers it.
            if not self._replica.is_loaded:
                self._todo = _Start()
            else:
                self._todo = self._replica.catch_up("reconnect", "the hub is back")
            return
        self._handle(self._replica.receive(message))

    def _housekeeping(self) -> None:
        if self.is_live and self._quiet > SILENT_HEARTBEATS * self._interval:
            self._go_down(f"no heartbeat for {self._quiet:.1f} s")
        elif not self.is_live and self._quiet > self._timeout:
            self._go_down(f"no welcome from the hub within {self._timeout:g} s")
        now = time.monotonic()
        if not self.is_live and now >= self._next_endpoint_check:
            self._next_endpoint_check = now + 1.0
            self._follow_endpoint()

    # --- requests the rules ask for ------------------------------------------------

    def _do(self, todo: Fetch | Resync | _Start) -> None:
        try:
            if isinstance(todo, Fetch):
                self._fetch(todo)
            elif isinstance(todo, Resync):
                self._resync(todo.cause, todo.reason)
            elif self._since is not None:
                self._resume(*self._since)
            else:
                self._resync("start", "start")
        except HubUnavailable as exc:
            self._go_down(f"{_what(todo)} failed: {exc.message}")

    def _fetch(self, fetch: Fetch) -> None:
        request = Changes(v=PROTOCOL_VERSION, after=fetch.after, prefix=self.prefix, limit=fetch.limit)
        try:
            page = self._connection.call(request, ChangePage, timeout=self._long_timeout)
        except HubUnavailable:
            raise
        except StatehubError as exc:  # a hub that cannot page its history (older, or a store behind us)
            self._todo = Resync("refused", f"the hub refused the changes after revision {fetch.after}: {exc.message}")
            return
        self._heard()
        self._handle(self._replica.receive_page(page))

    def _resume(self, epoch: str, rev: int) -> None:
        """Rebuild the replica as of ``rev`` (a consumer's last revision), then replay what followed."""
        where = f"cannot resume after revision {rev}"
        try:
            past = self._snapshot(at_rev=rev)
        except InvalidRequest as exc:
            self._resync("compacted", f"{where}: {exc.message}")
            return
        if epoch and past.epoch != epoch:
            reason = f"{where}: the hub's store is another one (epoch {past.epoch}, not {epoch}: restored or replaced)"
            self._resync("epoch", reason)
            return
        self._loaded(self._replica.load(past, "resume", f"resuming after revision {rev}", time.time()))
        self._todo = self._replica.catch_up("resume", f"resumed after revision {rev}")

    def _resync(self, cause: Cause, reason: str) -> None:
        self._loaded(self._replica.load(self._snapshot(), cause, reason, time.time()))

    def _snapshot(self, at_rev: int | None = None) -> Items:
        request = Snapshot(v=PROTOCOL_VERSION, prefix=self.prefix, at_rev=at_rev)
        reply = self._connection.call(request, Items, timeout=self._long_timeout)
        self._heard()
        return reply

    def _loaded(self, synced: Synced) -> None:
        self._since = None
        self.is_live = True
        if synced.resync:
            self.resyncs += 1
            log.warning("resynced at revision %d: %s (resync #%d)", synced.rev, synced.reason, self.resyncs)
        else:
            log.info("synced at revision %d (%d keys): %s", synced.rev, len(synced.items), synced.reason)
        self._events.append(synced)

    def _handle(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if isinstance(outcome, Update):
                self.replayed += outcome.origin == "replay"
                self._events.append(outcome)
            elif isinstance(outcome, CaughtUp):
                log.info(
                    "caught up at revision %d: replayed %d revisions (%s)", outcome.rev, outcome.replayed, outcome.reason
                )
                self._events.append(outcome)
            else:
                self._todo = outcome

    def _heard(self) -> None:
        """The hub answered a request: it is alive, and we follow it."""
        self._quiet = 0.0
        self.is_live = True
        self._down_reported = False

    @property
    def _long_timeout(self) -> float:
        """Snapshots and pages can be large: wait longer for them than for a plain request."""
        return max(5.0, 10 * self._timeout)

    def _go_down(self, reason: str) -> None:
        self.is_live = False
        self._todo = None
        self._quiet = 0.0
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
        self._quiet = 0.0

    def _follow_endpoint(self) -> None:
        """A hub that restarted may have bound new endpoints: follow hub.json."""
        endpoints = find_endpoints(self._data_dir, *self._explicit)
        if endpoints is not None and endpoints.events != self._sub_endpoint:
            self._open_sub(endpoints.events)


def _what(todo: Fetch | Resync | _Start) -> str:
    if isinstance(todo, Fetch):
        return f"reading the changes after revision {todo.after}"
    return "the snapshot"


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
