"""Reaching NATS JetStream: one connection, the two streams, and what a failure means.

A connection does not reconnect by itself (``allow_reconnect=False``): after a
drop the uplink and the follower start over from their durable state (the
cursor; the link records), which is the one recovery path there is, instead of
a second one hidden in the client library's buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, PubAck, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from statehub import StatehubError
from statehub.sites.wire import (
    DUPLICATE_WINDOW,
    FLEET_STREAM,
    FLEET_SUBJECTS,
    SITES_STREAM,
    SITES_SUBJECTS,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
ACK_TIMEOUT = 10.0  # seconds a published message may wait for JetStream's acknowledgement


class LinkDown(Exception):
    """The broker cannot be reached, or stopped answering: start over from the durable state."""


@dataclass
class Link:
    """A NATS connection that records why it ended."""

    url: str
    nc: Nats | None = None
    js: JetStreamContext | None = None
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    why: str = ""

    async def open(self, name: str) -> JetStreamContext:
        async def disconnected() -> None:
            self._lose("the connection to NATS dropped")

        async def closed() -> None:
            self._lose("the connection to NATS closed")

        async def error(exc: Exception) -> None:
            self.why = self.why or f"NATS: {exc}"

        try:
            self.nc = await nats.connect(
                self.url,
                name=name,
                allow_reconnect=False,
                # Even so, nats-py retries a first connect every 2 s up to 60 times (two minutes
                # deaf to SIGTERM): two attempts at once, then our own back-off, which a stop ends.
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                connect_timeout=CONNECT_TIMEOUT,
                disconnected_cb=disconnected,
                closed_cb=closed,
                error_cb=error,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise LinkDown(f"cannot reach NATS at {self.url}: {exc or type(exc).__name__}") from None
        self.js = self.nc.jetstream(timeout=ACK_TIMEOUT)
        return self.js

    def _lose(self, why: str) -> None:
        self.why = self.why or why
        self.lost.set()

    def check(self) -> None:
        """Raise LinkDown when the connection is gone."""
        if self.lost.is_set() or self.nc is None or not self.nc.is_connected:
            raise LinkDown(self.why or f"not connected to NATS at {self.url}")

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(TimeoutError, nats.errors.Error, OSError):
                await asyncio.wait_for(self.nc.close(), timeout=CONNECT_TIMEOUT)


async def ensure_streams(js: JetStreamContext, *, max_age: float = 0.0) -> None:
    """Create the sites stream and the fleet stream if they are missing (both sides call this).

    Sites: every change of every site, file storage, a duplicate window for the
    message ids.  Fleet: the last message of each fleet key only, like a
    key/value bucket, so a new site gets the whole fleet configuration.
    """
    sites = StreamConfig(
        name=SITES_STREAM,
        subjects=[SITES_SUBJECTS],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW,
        max_age=max_age or None,
        discard=DiscardPolicy.OLD,
    )
    fleet = StreamConfig(
        name=FLEET_STREAM,
        subjects=[FLEET_SUBJECTS],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW,
        max_msgs_per_subject=1,
    )
    for config in (sites, fleet):
        await _ensure(js, config)


async def _ensure(js: JetStreamContext, config: StreamConfig) -> None:
    assert config.name is not None
    try:
        await js.stream_info(config.name)
        return
    except nats.js.errors.NotFoundError:
        pass
    try:
        await js.add_stream(config)
    except BadRequestError as exc:  # another process made it a moment ago
        if "already in use" not in str(exc):
            raise


async def acknowledged(acks: list[asyncio.Future[PubAck]]) -> None:
    """Wait for every acknowledgement; LinkDown when they do not all come within ACK_TIMEOUT."""
    try:
        await asyncio.wait_for(asyncio.gather(*acks), timeout=ACK_TIMEOUT)
    except TimeoutError:
        raise LinkDown(f"no acknowledgement from JetStream within {ACK_TIMEOUT:.0f} s") from None


def describe(exc: BaseException) -> str:
    """A short account of a broker failure, for the log and the status."""
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text and not isinstance(exc, (LinkDown, StatehubError)) else text or name
