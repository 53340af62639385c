"""``statehub uplink nats://...``: forward every committed change of a site's hub to JetStream.

One session: connect, make sure the streams exist, follow the hub's feed from
the durable cursor, and publish each revision's changes in order, pipelined
(``publish_async``: many messages in flight, acknowledged in order).  The
cursor advances only over acknowledged revisions.  Any failure (NATS down or
restarted, an acknowledgement that does not come, the hub's feed ending) ends
the session; the next one starts from the cursor after a short back-off.
What was in flight is sent again, with the same message ids: JetStream drops
what it already has, and the centre skips what it already applied.

Every ``heartbeat`` seconds, whatever the feed does, the uplink also says on
``statehub.heartbeat.<site>`` (core NATS, in no stream) that it is linked, with
its cursor and the hub's revision: the centre tells a quiet site from a gone one.

The fleet keys (``fleet.``) come down on the same connection: see ``sites.fleet``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck

from statehub import Changed, Client, Item, StatehubError
from statehub.sites import fleet
from statehub.sites.feed import Quiet, Revision, SiteFeed, Snapshot
from statehub.sites.jetstream import ACK_TIMEOUT, Link, LinkDown, acknowledged, describe, ensure_streams
from statehub.sites.state import Ledger, run_sessions
from statehub.sites.wire import (
    FLEET_PREFIX,
    RESYNC_HEADER,
    SNAPSHOT_CHUNK_BYTES,
    SNAPSHOT_CHUNK_KEYS,
    SiteChange,
    SnapshotEntry,
    encode,
    encode_entry,
    encode_heartbeat,
    heartbeat_subject,
    message_id,
    site_subject,
)

log = logging.getLogger(__name__)

WINDOW = 2000  # messages in flight before the uplink waits for the oldest acknowledgement


@dataclass(frozen=True)
class UplinkConfig:
    """What one uplink process forwards, where to, and where it keeps its cursor."""

    url: str
    site: str
    make_client: Callable[[str], Client]  # a client of the site's hub writing as this source
    state_dir: Path
    prefix: str = ""
    fleet: bool = True  # also apply the centre's fleet keys to this hub
    heartbeat: float = 30.0  # seconds between heartbeats


@dataclass
class _Sent:
    """One revision handed to JetStream, and the acknowledgements it waits for."""

    epoch: str
    rev: int
    time: float
    forwarded: bool
    acks: list[asyncio.Future[PubAck]]


class NatsUplink:
    """Runs sessions until ``stop`` is set."""

    def __init__(self, config: UplinkConfig, stop: asyncio.Event) -> None:
        self.config = config
        self.stop = stop
        self.ledger = Ledger(config.state_dir, "nats", config.site, config.url)
        self._inflight: deque[_Sent] = deque()
        self._pending = 0
        self._chain = self.ledger.cursor.published
        self._hub_down = ""  # why the site's hub does not answer, as the feed last said
        self.ledger.status.heartbeat_every = config.heartbeat

    async def run(self) -> None:
        await run_sessions(
            self._session,
            self.ledger,
            self.stop,
            ends=(TimeoutError, LinkDown, nats.errors.Error, OSError, StatehubError),
            why=describe,
        )

    # --- one session ------------------------------------------------------------------------------

    async def _session(self) -> None:
        link = Link(self.config.url)
        self._inflight.clear()
        self._pending = 0
        self._chain = self.ledger.cursor.published
        since = None if self.ledger.cursor.is_new else (self.ledger.cursor.epoch, self.ledger.cursor.rev)
        feed = SiteFeed(
            lambda: self.config.make_client("uplink"),
            prefix=self.config.prefix,
            since=since,
            exclude=(FLEET_PREFIX,),
        )
        fleet_task: asyncio.Task[None] | None = None
        try:
            js = await link.open(f"statehub uplink {self.config.site}")
            await ensure_streams(js)
            if self.config.fleet:
                fleet_task = asyncio.create_task(
                    fleet.apply_to_site(js, self.config.site, self.config.make_client)
                )
            log.info(
                "linked to %s as site %r, resuming after revision %d",
                self.config.url,
                self.config.site,
                self.ledger.cursor.rev,
            )
            self.ledger.status.link = "up"
            next_beat = 0.0  # the first at once: the centre hears of a reconnect without waiting
            while not self.stop.is_set():
                link.check()
                if fleet_task is not None and fleet_task.done():
                    fleet_task.result()  # a failure there ends the session too
                if time.monotonic() >= next_beat:
                    await self._beat(link)
                    next_beat = time.monotonic() + self.config.heartbeat
                for step in await feed.next_steps():
                    if isinstance(step, Revision):
                        await self._send_revision(js, step)
                    elif isinstance(step, Snapshot):
                        await self._send_snapshot(js, step)
                    else:
                        await self._settle(step)
                self._reap()
                self.ledger.save_now_and_then()
            await self._drain()
            self.ledger.save_cursor()
        finally:
            if fleet_task is not None:
                fleet_task.cancel()
                await asyncio.gather(fleet_task, return_exceptions=True)
            await feed.close()
            await link.close()

    async def _beat(self, link: Link) -> None:
        """Say that this uplink is linked, where its cursor is and what the hub is at (core NATS, not stored)."""
        assert link.nc is not None
        beat = self.ledger.heartbeat(self.config.heartbeat, self._hub_down)
        await link.nc.publish(heartbeat_subject(self.config.site), encode_heartbeat(beat))

    async def _send_revision(self, js: JetStreamContext, revision: Revision) -> None:
        parts = [
            self._part(revision, change, index, len(revision.changes))
            for index, change in enumerate(revision.changes)
        ]
        acks = [await self._publish(js, part, resync=False) for part in parts]
        if parts:
            self._chain = revision.rev
        self._inflight.append(_Sent(revision.epoch, revision.rev, revision.time, bool(parts), acks))
        await self._keep_window()

    def _part(self, revision: Revision, change: Changed, index: int, count: int) -> SiteChange:
        return SiteChange(
            site=self.config.site,
            epoch=revision.epoch,
            rev=revision.rev,
            index=index,
            count=count,
            prev=self._chain,
            op=change.op,
            key=change.key,
            value=change.value if change.op == "set" else None,
            time=change.time,
            source=change.source,
            user=change.user,
        )

    async def _send_snapshot(self, js: JetStreamContext, snapshot: Snapshot) -> None:
        """Publish the whole prefix as one resync revision: the centre replaces this site's subtree with it."""
        await self._drain()
        log.warning(
            "publishing a full snapshot at revision %d (%d keys) as a resync: %s",
            snapshot.rev, len(snapshot.items), snapshot.reason,
        )  # fmt: skip
        self.ledger.status.link = "resyncing"
        self.ledger.status.resyncs += 1
        self.ledger.status.last_resync = f"revision {snapshot.rev}: {snapshot.reason}"
        self.ledger.save_status()
        chunks = snapshot_chunks(snapshot.items)
        parts = [
            SiteChange(
                site=self.config.site,
                epoch=snapshot.epoch,
                rev=snapshot.rev,
                index=index,
                count=len(chunks),
                prev=0,
                op="snapshot",
                entries=entries,
            )  # fmt: skip
            for index, entries in enumerate(chunks)
        ]
        acks = []
        for part in parts:
            acks.append(await self._publish(js, part, resync=True))
            if len(acks) % WINDOW == 0:
                await acknowledged(acks[-WINDOW:])
        self._chain = snapshot.rev
        self._inflight.append(_Sent(snapshot.epoch, snapshot.rev, time.time(), True, acks))
        await self._drain()
        self.ledger.status.link = "up"
        log.info("resync at revision %d acknowledged", snapshot.rev)

    async def _publish(
        self, js: JetStreamContext, part: SiteChange, *, resync: bool
    ) -> asyncio.Future[PubAck]:
        headers = {"Nats-Msg-Id": message_id(part)}
        if resync:
            headers[RESYNC_HEADER] = "1"
        future = await js.publish_async(
            site_subject(part.site, part.key), encode(part), wait_stall=ACK_TIMEOUT, headers=headers
        )
        self._pending += 1
        return future

    # --- acknowledgements and the cursor --------------------------------------------------------------

    async def _keep_window(self) -> None:
        while self._pending > WINDOW and len(self._inflight) > 1:
            await self._settle_oldest()

    async def _settle_oldest(self) -> None:
        oldest = self._inflight[0]
        if oldest.acks:
            await acknowledged(oldest.acks)
        self._reap()

    async def _drain(self) -> None:
        while self._inflight:
            await self._settle_oldest()

    async def _settle(self, quiet: Quiet) -> None:
        """Nothing new from the hub: wait for what is in flight, and bring the status up to date."""
        await self._drain()
        self.ledger.save_cursor()
        self.ledger.status.hub_rev = max(quiet.hub_rev, self.ledger.cursor.rev)
        self.ledger.status.lag_revisions = max(0, self.ledger.status.hub_rev - self.ledger.cursor.rev)
        self.ledger.status.lag_seconds = 0.0
        self._hub_down = quiet.down
        if quiet.down:
            self.ledger.status.last_error, self.ledger.status.last_error_time = f"the site's hub: {quiet.down}", time.time()
        self.ledger.save_status(now=False)

    def _reap(self) -> None:
        """Advance the cursor over the revisions whose every message is acknowledged, in order."""
        while self._inflight and all(ack.done() for ack in self._inflight[0].acks):
            sent = self._inflight.popleft()
            for ack in sent.acks:
                ack.result()  # an error reply from JetStream ends the session
            self._pending -= len(sent.acks)
            self.ledger.advance(sent.epoch, sent.rev, len(sent.acks))
            if sent.forwarded:
                self.ledger.cursor.published = sent.rev
        oldest = self._inflight[0] if self._inflight else None
        self.ledger.status.lag_seconds = max(0.0, time.time() - oldest.time) if oldest else 0.0


async def run_uplink(config: UplinkConfig, stop: asyncio.Event) -> None:
    await NatsUplink(config, stop).run()


def snapshot_chunks(items: list[Item]) -> list[list[SnapshotEntry]]:
    """The keys of a resync in chunks of at most SNAPSHOT_CHUNK_KEYS keys and about SNAPSHOT_CHUNK_BYTES; one empty
    chunk for a site with no keys (the centre still learns that it has none)."""
    chunks: list[list[SnapshotEntry]] = [[]]
    size = 0
    for item in items:
        entry = SnapshotEntry(
            key=item.key, value=item.value, rev=item.rev, time=item.time, source=item.source, user=item.user
        )
        weight = len(encode_entry(entry))
        if chunks[-1] and (len(chunks[-1]) >= SNAPSHOT_CHUNK_KEYS or size + weight > SNAPSHOT_CHUNK_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += weight
    return chunks
