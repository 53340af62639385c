"""Subscriptions on the events socket stay under the hub's control, and each peer's are capped.

libzmq keeps every distinct subscription an XPUB receives in a trie of one
node per byte, for as long as the peer stays connected: one peer sending
2,000 distinct 4,000-byte subscriptions once grew the hub by ~370 MiB (issue
13, item 6).  Subscribers only ever need ``""`` (they filter by prefix
themselves, docs/protocol.md section 5), so:

- the XPUB runs in ``XPUB_MANUAL`` mode: the hub subscribes each subscribing
  peer to ``""`` itself, so the trie used to match published messages has one
  node whatever peers ask for;
- its MAXMSGSIZE (``hub.sockets``) drops a peer whose subscription is longer
  than a key prefix needs, before libzmq stores any of it;
- the topic bytes each peer holds are counted (libzmq's metadata names the
  peer: ``localhost:UID:GID:PID`` over ipc, the IP over tcp), and a peer over
  MAX_TOPIC_BYTES is disconnected: its connections to this socket are shut
  down, which frees what libzmq stored for them.  Its SUB reconnects, as any
  does, and is held to the same cap again.

Every subscription is still answered with a welcome (``hub.publisher``).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Iterator

import zmq

from statehub.hub.log_limit import RateLimitedLog

log = logging.getLogger(__name__)

MAX_TOPIC_BYTES = 16 * 1024  # per peer: 64 subscriptions to the longest key prefix
MAX_PEERS_COUNTED = 1024  # the counts are forgotten beyond this (a peer's own unsubscriptions lower them)
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class SubscriptionGuard:
    """Counts one XPUB's subscriptions per peer and disconnects a peer that holds too many bytes of them."""

    def __init__(self, xpub: zmq.Socket[bytes], endpoint: str) -> None:
        self._xpub = xpub
        self._endpoint = endpoint
        self._held: dict[str, int] = {}
        self._faults = RateLimitedLog(log)
        self.disconnected = 0  # peers disconnected since start

    def admit(self, frame: zmq.Frame) -> bytes | None:
        """Apply one message the XPUB handed up; return its topic if it subscribes (to be welcomed)."""
        data = frame.bytes
        if data[:1] not in (b"\x00", b"\x01"):
            return None
        topic, subscribing = data[1:], data[:1] == b"\x01"
        if subscribing:
            self._xpub.setsockopt(zmq.SUBSCRIBE, b"")  # this peer gets everything; its SUB filters
        if topic:
            self._count(_peer_of(frame), len(topic) if subscribing else -len(topic))
        return topic if subscribing else None

    def _count(self, peer: str, delta: int) -> None:
        held = max(0, self._held.get(peer, 0) + delta)
        if held <= MAX_TOPIC_BYTES:
            if len(self._held) >= MAX_PEERS_COUNTED and peer not in self._held:
                self._held.clear()
            self._held[peer] = held
            return
        self._held.pop(peer, None)
        shut = close_connections_from(self._endpoint, peer)
        self.disconnected += 1
        self._faults.report(
            f"flood {self._endpoint}",
            logging.WARNING,
            f"a peer ({peer or 'unknown'}) on {self._endpoint} subscribed to more than {MAX_TOPIC_BYTES} "
            f"bytes of topics (subscribers need only \"\"); closed its {shut} connection(s)",
        )


def close_connections_from(endpoint: str, peer: str) -> int:
    """Shut down this process's connections accepted on ``endpoint`` from ``peer`` (all when empty); how many."""
    shut = 0
    for sock in _accepted(endpoint):
        with sock:
            try:
                if peer and _peer_key(sock) != peer:
                    continue
                sock.shutdown(socket.SHUT_RDWR)  # libzmq sees the peer leave and frees its subscriptions
            except OSError:  # the connection ended meanwhile (a reset peer has no address left)
                continue
            shut += 1
    return shut


def _peer_of(frame: zmq.Frame) -> str:
    try:
        return str(frame.get("Peer-Address"))
    except zmq.ZMQError:  # no metadata (libzmq's own unsubscriptions of a peer that left)
        return ""


def _peer_key(sock: socket.socket) -> str:
    """What libzmq calls this connection's peer: ``localhost:UID:GID:PID`` for ipc, the IP for tcp."""
    if sock.family == socket.AF_UNIX:
        pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        return f"localhost:{uid}:{gid}:{pid}"
    return str(sock.getpeername()[0])


def _accepted(endpoint: str) -> Iterator[socket.socket]:
    """Duplicates of this process's sockets accepted on ``endpoint`` (Linux: /proc/self/fd)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        try:
            copy = os.dup(fd)
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=copy)
        except OSError:  # not a socket
            os.close(copy)
            continue
        try:
            if _is_accepted_on(sock, endpoint):
                yield sock
                continue
        except OSError:
            pass
        sock.close()


def _is_accepted_on(sock: socket.socket, endpoint: str) -> bool:
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        return False  # the listening socket itself
    local = sock.getsockname()
    if endpoint.startswith("ipc://"):
        return sock.family == socket.AF_UNIX and local == endpoint[len("ipc://") :]
    port = endpoint.rpartition(":")[2]
    return sock.family in (socket.AF_INET, socket.AF_INET6) and str(local[1]) == port
