"""One request/reply channel to the hub, in the zguide's Lazy Pirate style, honest about outcomes.

A request ends in one of three ways, and the caller is told which
(docs/protocol.md §6):

- **answered**: the reply (an ``error`` reply is raised as its exception);
- **not delivered**: the request never left this process, so nothing was
  written: HubUnavailable.  "Not running" only on evidence (no hub.json, its
  pid gone, a refused connection); a hub whose process answers but refuses
  the handshake (CURVE) says why; a running hub that takes no request within
  the whole timeout is called silent;
- **delivered, not answered in time**: a read raises HubUnavailable; a write
  raises OutcomeUnknown, because the hub may still apply it.

IMMEDIATE makes "delivered" exact: a REQ socket with IMMEDIATE queues a
message only on a connection whose handshake is complete, and closing it with
LINGER 0 drops anything unsent.  The socket's monitor tells a refused
connection, a failed handshake and a dropped connection apart, so a new
connection to a busy hub is waited for as long as an old one.  A connection
that drops after delivery (the hub restarted) is followed by the same bytes
again, so a write keeps its request id and the hub applies it at most once,
until the timeout.

A REQ socket is unusable after a request that got no reply: any failure
(a timeout, an exception, Ctrl-C) closes it, and the next request opens a
fresh one, looking hub.json up again, so a hub restarted on new ports is found.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec
import zmq

from statehub import reachability
from statehub.hub.errors import HubUnavailable, OutcomeUnknown, ProtocolError, error_from_reply
from statehub.hub.paths import Layout, read_hub_info
from statehub.hub.protocol import Batch, Error, Reply, Request, Set, Txn, Unset, reply_decoder
from statehub.hub.zmq_events import monitor_event
from statehub.remote import Remote, secure

R = TypeVar("R")

REOPEN_PAUSE = 0.1  # between attempts to reach a hub that went away while a write was in flight
HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
)
WATCHED_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_CLOSED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


# Plain ints: ``events & zmq.POLLIN`` builds a PollEvent flag each time (~1.5 us, three times a request).
_POLLIN, _POLLOUT = int(zmq.POLLIN), int(zmq.POLLOUT)


@dataclass(frozen=True)
class Endpoints:
    rpc: str
    events: str


def find_endpoints(data_dir: Path, rpc: str | None = None, events: str | None = None) -> Endpoints | None:
    """The hub's endpoints: explicit ones, else those in hub.json; None when no hub announced itself."""
    if rpc and events:
        return Endpoints(rpc, events)
    info = read_hub_info(Layout(data_dir))
    if info is None:
        return None
    return Endpoints(rpc or info.rpc, events or info.events)


class Ready(enum.Enum):
    """What waiting for a connection that can take a request came to."""

    YES = "ready"
    DROPPED = "dropped"  # its connection went down since the last request: look the hub up again
    REFUSED = "refused"  # connecting failed: nothing listens there
    HANDSHAKE_REFUSED = "handshake refused"
    TIMED_OUT = "timed out"


class Link:
    """One REQ socket to one endpoint, and what its monitor has told about the connection."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        *,
        pid: int | None,
        remote: Remote | None,
    ) -> None:
        self.endpoint = endpoint
        self.pid = pid  # the hub process hub.json named; None for an explicit endpoint
        self.remote = remote
        self.connected = False  # a connection is up (its handshake may still be pending)
        self.was_connected = False
        self.refused = False  # the last attempt to connect failed
        self.disconnects = 0  # connections that went down after they were up
        self.used = False  # a request went out on it
        self._disconnects_at_send = 0
        self.handshake_error: HubUnavailable | None = None
        self.socket = context.socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.IMMEDIATE, 1)
        secure(self.socket, remote)
        self.monitor = self.socket.get_monitor_socket(WATCHED_EVENTS)
        self.socket.connect(endpoint)
        self._poller = zmq.Poller()
        self._poller.register(self.socket, zmq.POLLIN | zmq.POLLOUT)
        self._poller.register(self.monitor, zmq.POLLIN)

    def send(self, body: bytes, deadline: float) -> Ready:
        """Send ``body`` once a connection can take it; else say why not by ``deadline``."""
        self.read_events()  # a few microseconds when nothing happened; it dates any later drop
        if self.used and not self.connected:
            return Ready.DROPPED  # the hub went away since the last request (a new link sorts itself out)
        while True:
            self._disconnects_at_send = self.disconnects
            try:
                self.socket.send(body, zmq.DONTWAIT)
                self.used = True
                return Ready.YES
            except zmq.Again:
                pass
            ready = self._wait_writable(deadline)
            if ready is not Ready.YES:
                return ready

    @property
    def dropped(self) -> bool:
        """The connection that took the last request went down: its reply can never come."""
        return self.disconnects > self._disconnects_at_send

    def receive(self, deadline: float) -> bytes | None:
        """The reply; None at ``deadline``, or as soon as the connection drops (the reply is lost then)."""
        while True:
            events = self._poll(deadline)
            if self._has(events, self.socket, _POLLIN):
                return self.socket.recv()
            if self._has(events, self.monitor, _POLLIN):
                self.read_events()
                if self.dropped:
                    return self.socket.recv() if self.socket.poll(0, zmq.POLLIN) else None
            if time.monotonic() >= deadline:
                return None

    def read_events(self) -> None:
        """Take in what the monitor has reported since the last look."""
        while _readable(self.monitor):
            kind, value = monitor_event(self.monitor.recv_multipart())
            if kind == zmq.EVENT_CONNECTED:
                self.connected = self.was_connected = True
                self.refused = False
            elif kind == zmq.EVENT_CLOSED and not self.connected:
                self.refused = True
            elif kind == zmq.EVENT_DISCONNECTED:
                if self.connected:
                    self.disconnects += 1
                self.connected = False
            elif kind in HANDSHAKE_FAILURES:
                refusal = reachability.handshake_refused(self.endpoint, self.remote, kind, value)
                self.handshake_error = refusal or self.handshake_error

    def close(self) -> None:
        try:
            self.socket.disable_monitor()
        finally:
            self.monitor.close(linger=0)
            self.socket.close(linger=0)

    def _wait_writable(self, deadline: float) -> Ready:
        while True:
            events = self._poll(deadline)
            if self._has(events, self.monitor, _POLLIN):
                self.read_events()
                if self.handshake_error is not None:
                    return Ready.HANDSHAKE_REFUSED
                if self.refused:
                    return Ready.REFUSED
            if self._has(events, self.socket, _POLLOUT):
                return Ready.YES
            if time.monotonic() >= deadline:
                return Ready.TIMED_OUT

    def _poll(self, deadline: float) -> dict[zmq.Socket[bytes], int]:
        remaining = max(0.0, deadline - time.monotonic())
        return dict(self._poller.poll(int(remaining * 1000) + 1))

    @staticmethod
    def _has(events: dict[zmq.Socket[bytes], int], sock: zmq.Socket[bytes], flag: int) -> bool:
        return bool(events.get(sock, 0) & flag)


def _readable(sock: zmq.Socket[bytes]) -> bool:
    """Has ``sock`` a message waiting?  (A socket option read: cheaper than a poll on every request.)"""
    events = sock.get(zmq.EVENTS)
    return isinstance(events, int) and bool(events & _POLLIN)


class Connection:
    """Sends requests and waits for replies.  Not thread-safe: one thread uses it."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        data_dir: Path,
        *,
        rpc: str | None = None,
        timeout: float = 0.5,
        remote: Remote | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.timeout = timeout
        self._remote = remote
        self._explicit_rpc = rpc or (remote.rpc if remote is not None else None)
        self._context = context
        self._link: Link | None = None
        self._last: tuple[str, int | None] = ("", None)  # the endpoint and pid last connected to
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = reply_decoder().decode

    def request(self, message: Request, *, timeout: float | None = None) -> Reply:
        """Send one request and return its reply; raise the reply's error as an exception.

        Raises HubUnavailable when the request did not reach the hub, or (a
        read) was not answered within ``timeout``; OutcomeUnknown when a write
        reached the hub and was not answered within ``timeout``.
        """
        is_write = isinstance(message, Set | Unset | Txn | Batch)
        data = self._exchange(self._encode(message), self.timeout if timeout is None else timeout, is_write)
        try:
            reply = self._decode(data)
        except msgspec.MsgspecError as exc:
            raise ProtocolError(f"the hub sent a reply this client cannot read: {exc}") from exc
        if isinstance(reply, Error):
            raise error_from_reply(reply)
        return reply

    def call(self, message: Request, expected: type[R], *, timeout: float | None = None) -> R:
        """``request``, checking that the reply is an ``expected`` (a ProtocolError if not)."""
        reply = self.request(message, timeout=timeout)
        if not isinstance(reply, expected):
            raise ProtocolError(
                f"the hub answered a {message.__class__.__name__.lower()} request with "
                f"{reply.__class__.__name__.lower()}, not {expected.__name__.lower()}"
            )
        return reply

    def close(self) -> None:
        self._reset()

    def _exchange(self, body: bytes, timeout: float, is_write: bool) -> bytes:
        try:
            return self._deliver(body, timeout, is_write)
        except BaseException:
            self._reset()  # a REQ socket left waiting (a timeout, Ctrl-C) could never send again
            raise

    def _deliver(self, body: bytes, timeout: float, is_write: bool) -> bytes:
        deadline = time.monotonic() + timeout
        in_doubt = False  # a write reached a hub that went away unanswered: it may be applied
        while True:
            try:
                link = self._open()
            except HubUnavailable:
                if in_doubt and self._pause(deadline):
                    continue  # no hub at the moment: one may be restarting
                if in_doubt:
                    raise self._unanswered(is_write, timeout, dropped=True) from None
                raise
            ready = link.send(body, deadline)
            if ready is Ready.DROPPED:
                self._reset()  # the hub went away since the last request: find it again (maybe on new ports)
                continue
            if ready is not Ready.YES:
                self._reset()
                if in_doubt and ready is not Ready.TIMED_OUT and self._pause(deadline):
                    continue
                if in_doubt:
                    raise self._unanswered(is_write, timeout, dropped=True)
                raise self._not_delivered(link, ready, timeout)
            data = link.receive(deadline)
            if data is not None:
                return data
            self._reset()
            in_doubt = is_write
            if not link.dropped or time.monotonic() >= deadline:
                raise self._unanswered(is_write, timeout, dropped=link.dropped)
            # The hub went away after taking the request: ask again, with the same bytes (and request id).

    def _open(self) -> Link:
        if self._link is not None:
            return self._link
        if self._explicit_rpc is not None:
            endpoint, pid = self._explicit_rpc, None
        else:
            info = reachability.announced_hub(Layout(self.data_dir))
            endpoint, pid = info.rpc, info.pid
            reachability.check_ipc_access(endpoint)
        self._link = Link(self._context, endpoint, pid=pid, remote=self._remote)
        self._last = (endpoint, pid)
        return self._link

    def _reset(self) -> None:
        if self._link is not None:
            link, self._link = self._link, None
            link.close()

    @staticmethod
    def _pause(deadline: float) -> bool:
        """Sleep a little before trying a hub that went away again; False when the deadline has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(REOPEN_PAUSE, remaining))
        return True

    def _not_delivered(self, link: Link, ready: Ready, timeout: float) -> HubUnavailable:
        if ready is Ready.HANDSHAKE_REFUSED and link.handshake_error is not None:
            return link.handshake_error
        local = self._remote is None
        if ready is Ready.REFUSED:
            return reachability.refused(link.endpoint, local, pid=link.pid, hub_file=Layout(self.data_dir).hub_file)
        pid = link.pid if link.pid is not None and reachability.process_exists(link.pid) else None
        return reachability.silent(link.endpoint, pid, timeout, connected=link.was_connected, local=local)

    def _unanswered(self, is_write: bool, timeout: float, *, dropped: bool) -> HubUnavailable | OutcomeUnknown:
        endpoint, pid = self._last
        if is_write:
            return reachability.unanswered_write(endpoint, pid, timeout, dropped=dropped)
        return reachability.unanswered_read(endpoint, pid, timeout)
