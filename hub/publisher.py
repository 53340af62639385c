"""The change stream: the hub's XPUB sockets, welcomes, heartbeats and what a change may carry.

Every committed change is published, in revision order, on every XPUB (the
local one and, with ``--listen``, the CURVE one).  What a published change
carries is decided here: a secret's value is the placeholder, and a value
larger than MAX_INLINE_VALUE_BYTES is left out (``value_omitted``), which is
what bounds the memory a stalled subscriber can pin in the hub.

Each subscription an XPUB hands up is answered with a welcome carrying the
last published revision: seeing it tells a subscriber that its subscription
is live (docs/protocol.md, "The change stream").  Sockets are the hub's
server thread's: a Publisher is used from that thread only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import msgspec
import zmq

from statehub.hub.protocol import (
    HEARTBEAT_TOPIC,
    MAX_INLINE_VALUE_BYTES,
    SECRET_PLACEHOLDER,
    Changed,
    Heartbeat,
    Welcome,
)
from statehub.hub.records import Applied, Change
from statehub.hub.replies import site_origin
from statehub.hub.secret_box import is_sealed
from statehub.hub.subscriptions import SubscriptionGuard

MAX_SUBSCRIPTIONS_PER_TURN = 4096  # bounds the time one turn spends welcoming


def changed_message(epoch: str, change: Change, *, inline_limit: int | None = MAX_INLINE_VALUE_BYTES) -> Changed:
    """The published form of a change: a secret as the placeholder, a value over ``inline_limit`` omitted.

    The feed's pages (``hub.feed``) pass ``inline_limit=None``: a page is a reply,
    so a large value in it pins no memory in the publisher.
    """
    message = Changed(
        epoch=epoch,
        rev=change.rev,
        index=change.index,
        count=change.count,
        key=change.key,
        op=change.op,
        time=change.time,
        source=change.source,
        user=change.user,
        backfill=change.backfill,
        prev_rev=change.prev_rev,
        ttl=change.ttl,
    )
    if change.origin is not None:
        message.origin = site_origin(change.origin)
    blob = change.blob
    if blob is None:
        return message
    if is_sealed(blob):
        message.value, message.secret = SECRET_PLACEHOLDER, True
    elif inline_limit is not None and len(blob) > inline_limit:
        message.value_omitted = True
    else:
        message.value = msgspec.Raw(blob)
    return message


class Publisher:
    """Publishes changes, heartbeats and welcomes on every XPUB of the hub."""

    def __init__(self, xpubs: list[zmq.Socket[bytes]], *, epoch: str, rev: int, heartbeat: float) -> None:
        self.xpubs = xpubs
        self.epoch = epoch
        self.published_rev = rev  # every revision up to this one has left the hub
        self.heartbeat_interval = heartbeat
        self._encode = msgspec.msgpack.Encoder().encode
        self._guards: dict[zmq.Socket[bytes], SubscriptionGuard] = {}

    def add(self, xpub: zmq.Socket[bytes]) -> None:
        """Publish on ``xpub`` too (the ``--listen`` one)."""
        self.xpubs.append(xpub)

    def guard(self, xpub: zmq.Socket[bytes], endpoint: str) -> None:
        """Hold the subscriptions of ``xpub`` (bound at ``endpoint``) to the hub's rules (hub.subscriptions)."""
        self._guards[xpub] = SubscriptionGuard(xpub, endpoint)

    def publish(self, applied: Iterable[Applied]) -> None:
        """Publish the changes of committed writes, in the order given (revision order)."""
        for write in applied:
            for change in write.changes:
                self._send(change.key.encode(), changed_message(self.epoch, change))
                self.published_rev = change.rev

    def heartbeat(self) -> None:
        beat = Heartbeat(
            epoch=self.epoch, rev=self.published_rev, time=time.time(), interval=self.heartbeat_interval
        )
        self._send(HEARTBEAT_TOPIC, beat)

    def welcome(self, xpub: zmq.Socket[bytes]) -> None:
        """Welcome the new subscriptions of ``xpub`` on that socket (the others' subscribers need none)."""
        guard = self._guards[xpub]
        for _ in range(MAX_SUBSCRIPTIONS_PER_TURN):
            try:
                frame = xpub.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            topic = guard.admit(frame)
            if topic is not None:  # an unsubscription needs no answer
                welcome = Welcome(
                    epoch=self.epoch,
                    rev=self.published_rev,
                    topic=topic.decode("utf-8", "replace"),
                    interval=self.heartbeat_interval,
                )
                xpub.send_multipart([topic, self._encode(welcome)])

    def _send(self, topic: bytes, message: Changed | Heartbeat) -> None:
        """Send to the subscribers of every XPUB, encoded once."""
        frames = [topic, self._encode(message)]
        for xpub in self.xpubs:
            xpub.send_multipart(frames)
