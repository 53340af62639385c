"""``statehub follow-sites nats://...``: apply every site's changes into the central hub, exactly once.

A durable pull consumer reads the sites stream.  The parts of one site revision
(``index``/``count``) are gathered, then applied as one central txn under
``sites.<site>.<key>``, each op carrying the site's revision, time, source and
user as its origin, together with the site's link record
(``statehub.link.<site>``) written with ``expect`` = the record's current
central revision.  That txn is the whole of exactly-once: a revision at or
below the record's is a duplicate (acknowledged, skipped); a revision whose
``prev`` the record has not reached yet is early (a reconnect delivered it
before its predecessor: it is held, unacknowledged, until the predecessor is
applied, and JetStream offers the predecessor again after its ack wait); two followers,
or a crash between the commit and the acknowledgement, meet the ``expect``
and the record, never a second application.

A resync (every part carries the resync header) replaces the site's subtree:
every key set that differs from the snapshot, every key the snapshot lacks
unset, the record in the same txn (chunks of ``MAX_TXN_OPS`` for a subtree
that big, the record in the last one).  A resync of a new epoch (the site's
store was restored) is said in the log.

Each uplink's heartbeat (core NATS, ``statehub.heartbeat.<site>``) is written
into the site's link record as ``heartbeat`` (when the centre received it, the
site's cursor and hub revision, the interval), so a dashboard tells a site
that is linked but quiet from one that is gone; a site whose heartbeat is
three intervals late is said in the log, and so is its return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from statehub import (
    MAX_BATCH_OPS,
    MAX_BATCH_WRITES,
    MAX_TXN_OPS,
    Client,
    ConflictError,
    Item,
    NotFound,
    Op,
    SiteOrigin,
    StatehubError,
)
from statehub.sites import fleet
from statehub.sites.jetstream import Link, LinkDown, describe, ensure_streams
from statehub.sites.state import BACKOFF
from statehub.sites.wire import (
    HEARTBEAT_SUBJECTS,
    RESYNC_HEADER,
    SITES_PREFIX,
    SITES_STREAM,
    SITES_SUBJECTS,
    Heartbeat,
    LinkHeartbeat,
    LinkRecord,
    SiteChange,
    SnapshotEntry,
    central_key,
    check_site,
    decode,
    decode_heartbeat,
    decode_link,
    link_key,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

FETCH_BATCH = 512
FETCH_WAIT = 0.5
HAND_BACK_SECONDS = 5.0  # what a session spends handing back what it did not apply, at most
ACK_WAIT = 10.0  # seconds JetStream waits for an acknowledgement before delivering a message again
SILENT_AFTER = 3  # heartbeat intervals without one before a site is said to be silent


@dataclass(frozen=True)
class FollowConfig:
    url: str
    make_client: Callable[[str], Client]  # a client of the central hub writing as this source
    durable: str = "statehub-centre"
    fleet: bool = True  # also forward the central fleet. keys down to the sites


@dataclass
class _Assembly:
    """The parts of one site revision received so far, and their messages to acknowledge."""

    count: int
    resync: bool
    parts: dict[int, SiteChange] = field(default_factory=dict)
    deliveries: dict[int, Msg] = field(default_factory=dict)  # the latest delivery of each part

    @property
    def messages(self) -> list[Msg]:
        return list(self.deliveries.values())

    @property
    def whole(self) -> bool:
        return len(self.parts) == self.count

    def ordered(self) -> list[SiteChange]:
        return [self.parts[index] for index in range(self.count)]


@dataclass
class _Site:
    """What the follower knows of one site: its link record and the central revision of it."""

    record: LinkRecord | None
    record_rev: int
    assembling: dict[tuple[str, int], _Assembly] = field(default_factory=dict)
    held: dict[tuple[str, int], _Assembly] = field(default_factory=dict)  # early revisions, by (epoch, prev)
    pending: list[_Assembly] = field(default_factory=list)  # whole revisions in order, not yet applied
    pending_ops: int = 0

    @property
    def tail(self) -> tuple[str, int] | None:
        """The (epoch, rev) the next revision must follow: the last one pending, else the record's."""
        if self.pending:
            first = self.pending[-1].parts[0]
            return first.epoch, first.rev
        return None if self.record is None else (self.record.epoch, self.record.rev)

    def unacknowledged(self) -> list[Msg]:
        groups = (*self.assembling.values(), *self.held.values(), *self.pending)
        return [message for assembly in groups for message in assembly.messages]


@dataclass
class Tally:
    """What the follower did, for its log and the tests."""

    applied: int = 0
    duplicates: int = 0
    early: int = 0
    resyncs: int = 0


@dataclass
class _Heard:
    """When the centre last heard a site's heartbeat, and whether it has said that the site went silent."""

    received: float
    every: float
    silent: bool = False


class Follower:
    def __init__(self, config: FollowConfig, stop: asyncio.Event) -> None:
        self.config = config
        self.stop = stop
        self.tally = Tally()
        self._sites: dict[str, _Site] = {}
        self._beats: dict[str, LinkHeartbeat] = {}  # the latest heartbeat of each site, not yet recorded
        self._heard: dict[str, _Heard] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="follow-sites")
        self._client: Client | None = None

    async def run(self) -> None:
        failures = 0
        try:
            while not self.stop.is_set():
                try:
                    await self._session()
                    failures = 0
                except (TimeoutError, LinkDown, nats.errors.Error, OSError, StatehubError) as exc:
                    failures += 1
                    log.warning("follow-sites: %s; starting over from the link records", describe(exc))
                if failures:
                    await _pause(self.stop, BACKOFF[min(failures, len(BACKOFF)) - 1])
        finally:
            await self._call(self._close_client)
            self._pool.shutdown(wait=True)

    async def _session(self) -> None:
        link = Link(self.config.url)
        self._sites.clear()  # the link records are read again: they are the truth, not this cache
        fleet_task: asyncio.Task[None] | None = None
        try:
            js = await link.open("statehub follow-sites")
            await ensure_streams(js)
            subscription = await _consumer(js, self.config.durable)
            assert link.nc is not None
            await link.nc.subscribe(HEARTBEAT_SUBJECTS, cb=self._heartbeat)
            if self.config.fleet:
                fleet_task = asyncio.create_task(fleet.forward_fleet(js, self.config.make_client, self.stop))
            log.info("following the sites on %s (consumer %s)", self.config.url, self.config.durable)
            while not self.stop.is_set():
                link.check()
                if fleet_task is not None and fleet_task.done():
                    fleet_task.result()
                try:
                    messages = await subscription.fetch(FETCH_BATCH, timeout=FETCH_WAIT)
                except TimeoutError:  # nats-py raises its own TimeoutError or asyncio's, both this
                    messages = []
                for message in messages:
                    await self._receive(message)
                await self.flush_all()
                await self._record_heartbeats()
        finally:
            if fleet_task is not None:
                fleet_task.cancel()
                await asyncio.gather(fleet_task, return_exceptions=True)
            if link.nc is not None and link.nc.is_connected:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hand_back(), timeout=HAND_BACK_SECONDS)
            await link.close()

    async def _heartbeat(self, message: Msg) -> None:
        """Keep the latest heartbeat of each site, for the loop to record (a bad one is logged and dropped)."""
        try:
            beat = decode_heartbeat(message.data)
            check_site(beat.site)
        except (msgspec.DecodeError, StatehubError) as exc:
            log.warning("follow-sites: dropped a heartbeat on %s: %s", message.subject, exc)
            return
        self._beats[beat.site] = _link_heartbeat(beat, time.time())

    async def _record_heartbeats(self) -> None:
        """Write each site's latest heartbeat into its link record; say which sites went silent or came back."""
        beats, self._beats = self._beats, {}
        for name, beat in beats.items():
            heard = self._heard.get(name)
            if heard is not None and heard.silent:
                log.info("site %s: heard again after %.0f s", name, beat.received - heard.received)
            self._heard[name] = _Heard(beat.received, beat.every)
            site = self._sites.get(name) or await self._load_site(name)
            await self._call(self._apply_heartbeat, name, site, beat)
        now = time.time()
        for name, heard in self._heard.items():
            if not heard.silent and now - heard.received > SILENT_AFTER * heard.every:
                heard.silent = True
                log.warning(
                    "site %s: silent, no heartbeat for %.0f s (it sends one every %g s)",
                    name, now - heard.received, heard.every,
                )  # fmt: skip

    async def _hand_back(self) -> None:
        """Offer what this session received but did not apply to the next one at once, not after the ack wait."""
        for site in self._sites.values():
            for message in site.unacknowledged():
                with contextlib.suppress(nats.errors.Error, OSError):
                    await message.nak()

    async def _receive(self, message: Msg) -> None:
        try:
            part = decode(message.data)
        except msgspec.DecodeError as exc:
            log.error(
                "follow-sites: dropped a message on %s that is not a site change: %s", message.subject, exc
            )
            await message.term()
            return
        site = self._sites.get(part.site) or await self._load_site(part.site)
        resync = (message.headers or {}).get(RESYNC_HEADER) == "1"
        assembly = site.assembling.setdefault((part.epoch, part.rev), _Assembly(part.count, resync))
        assembly.parts[part.index] = part
        assembly.deliveries[part.index] = message
        if assembly.whole:
            del site.assembling[(part.epoch, part.rev)]
            await self._complete(part.site, site, assembly)

    async def _load_site(self, name: str) -> _Site:
        site = await self._call(self._read_link, name)
        self._sites[name] = site
        return site

    async def _complete(self, name: str, site: _Site, assembly: _Assembly | None) -> None:
        """Queue a whole revision to apply (or skip it, or hold it), then any held revision that now follows."""
        while assembly is not None:
            first = assembly.parts[0]
            tail = site.tail
            if tail is not None and tail[0] == first.epoch and first.rev <= tail[1]:
                await self._duplicate(site, assembly)
            elif assembly.resync:
                await self._flush(name, site)
                await self._call(self._apply_resync, name, site, assembly.ordered())
                await _ack_all(assembly.messages)
            elif tail is None or tail[0] != first.epoch or first.prev > tail[1]:
                self.tally.early += 1
                if not site.held:
                    log.info(
                        "site %s: revision %d came before revision %d, which it follows (or before the site's "
                        "resync); holding it until then", name, first.rev, first.prev,
                    )  # fmt: skip
                site.held[(first.epoch, first.prev)] = assembly
                return
            else:
                site.pending.append(assembly)
                site.pending_ops += assembly.count + 1
                if (
                    len(site.pending) >= MAX_BATCH_WRITES - 1
                    or site.pending_ops >= MAX_BATCH_OPS - MAX_TXN_OPS
                ):
                    await self._flush(name, site)
            tail = site.tail
            assembly = site.held.pop(tail, None) if tail is not None else None

    async def _duplicate(self, site: _Site, assembly: _Assembly) -> None:
        """A revision seen before: acknowledge it once the revision it repeats is applied, not before."""
        self.tally.duplicates += 1
        first = assembly.parts[0]
        waiting = next((queued for queued in site.pending if queued.parts[0].rev == first.rev), None)
        if waiting is not None:
            waiting.deliveries.update(assembly.deliveries)
        else:
            await _ack_all(assembly.messages)

    async def _flush(self, name: str, site: _Site) -> None:
        """Apply the queued revisions of ``site``: one central revision each, in one batch, with the record."""
        if not site.pending:
            return
        queued, site.pending, site.pending_ops = site.pending, [], 0
        try:
            await self._call(self._apply_revisions, name, site, [assembly.ordered() for assembly in queued])
        except BaseException:
            site.pending = queued + site.pending  # handed back (nak) when the session ends
            raise
        for assembly in queued:
            await _ack_all(assembly.messages)

    async def flush_all(self) -> None:
        for name, site in self._sites.items():
            await self._flush(name, site)

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` in the thread that owns the central hub's client."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    # --- in the client's thread -------------------------------------------------------------------

    def _central(self) -> Client:
        if self._client is None:
            self._client = self.config.make_client("follow-sites")
        return self._client

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _read_link(self, name: str) -> _Site:
        try:
            item = self._central().get(link_key(name)).item
        except NotFound:
            return _Site(None, 0)
        return _Site(decode_link(item.value), item.rev)

    def _apply_revisions(self, name: str, site: _Site, revisions: list[list[SiteChange]]) -> None:
        """Site revisions in order, each its own central revision, all in one batch with the record, or none."""
        writes = [[_op(name, part) for part in parts] for parts in revisions]
        last = revisions[-1][0]
        link_op = self._link_op(name, site, last, resync=False)
        if len(writes[-1]) < MAX_TXN_OPS:
            writes[-1].append(link_op)
        else:  # a site txn of the most ops a txn may hold: the record is a write of its own, same batch
            writes.append([link_op])
        try:
            committed = self._central().batch(writes)
        except NotFound:
            # An unset of a key the centre never had (it was a secret at the site): drop it, and retry.
            client = self._central()
            writes = [[op for op in ops if op.op == "set" or _exists(client, op.key)] for ops in writes]
            committed = self._central().batch([ops for ops in writes if ops])
        except ConflictError:
            self._reread(name, site)  # someone else moved the record: the next session decides again
            raise
        site.record, site.record_rev = decode_link(link_op.value), committed.revs[-1]
        self.tally.applied += len(revisions)

    def _apply_heartbeat(self, name: str, site: _Site, beat: LinkHeartbeat) -> None:
        """The heartbeat into the site's link record, the rest of the record as it is."""
        if site.record is None:
            return  # the record comes with the site's first resync; the next heartbeat after it is recorded
        record = msgspec.structs.replace(site.record, heartbeat=beat)
        op = Op(op="set", key=link_key(name), value=msgspec.to_builtins(record), expect=site.record_rev)
        try:
            committed = self._central().txn([op])
        except ConflictError:  # another follower moved the record: this heartbeat is dropped, the next is written
            self._reread(name, site)
            return
        site.record, site.record_rev = record, committed.rev

    def _apply_resync(self, name: str, site: _Site, parts: list[SiteChange]) -> None:
        first = parts[0]
        current = {item.key: item for item in self._central().snapshot(f"{SITES_PREFIX}{name}.").items}
        wanted = {central_key(name, entry.key): entry for part in parts for entry in part.entries}
        ops = [
            _snapshot_op(name, key, entry)
            for key, entry in wanted.items()
            if _differs(current.get(key), entry)
        ]
        ops += [Op(op="unset", key=key) for key in current if key not in wanted]
        was = site.record
        why = "first contact" if was is None else (
            f"new epoch {first.epoch} (was {was.epoch}: the site's store was restored or replaced)"
            if was.epoch != first.epoch else f"from revision {was.rev}"
        )  # fmt: skip
        log.warning(
            "site %s resynced at revision %d (%s): %d keys written, %d unchanged",
            name, first.rev, why, len(ops), len(wanted) - sum(op.op == "set" for op in ops),
        )  # fmt: skip
        size = MAX_TXN_OPS - 1  # room for the link record
        chunks = [ops[start : start + size] for start in range(0, len(ops), size)] or [[]]
        for chunk in chunks[:-1]:  # a subtree too big for one txn: the record goes with the last part
            self._central().txn(chunk)
        self._commit(name, site, chunks[-1], first, resync=True)
        self.tally.resyncs += 1

    def _commit(
        self,
        name: str,
        site: _Site,
        ops: list[Op],
        first: SiteChange,
        *,
        origin: SiteOrigin | None = None,
        resync: bool = False,
    ) -> None:
        link_op = self._link_op(name, site, first, resync=resync)
        try:
            committed = self._central().txn([*ops, link_op], origin=origin)
        except ConflictError:
            self._reread(name, site)  # someone else moved the record: the next session decides again
            raise
        site.record, site.record_rev = decode_link(link_op.value), committed.rev

    def _link_op(self, name: str, site: _Site, last: SiteChange, *, resync: bool) -> Op:
        """The record of ``last`` applied, written only if the record is still at the revision we read."""
        resyncs = (site.record.resyncs if site.record else 0) + resync
        record = LinkRecord(
            site=name, epoch=last.epoch, rev=last.rev, time=last.time, applied=time.time(), resyncs=resyncs,
            heartbeat=site.record.heartbeat if site.record else None,
        )  # fmt: skip
        return Op(op="set", key=link_key(name), value=msgspec.to_builtins(record), expect=site.record_rev)

    def _reread(self, name: str, site: _Site) -> None:
        fresh = self._read_link(name)
        site.record, site.record_rev = fresh.record, fresh.record_rev


def _link_heartbeat(beat: Heartbeat, received: float) -> LinkHeartbeat:
    return LinkHeartbeat(
        received=received, sent=beat.time, rev=beat.rev, hub_rev=beat.hub_rev, every=beat.every,
        hub_down=beat.hub_down,
    )  # fmt: skip


def _op(site: str, part: SiteChange) -> Op:
    """A site change as a central op, carrying where it was made (a batch has no txn-wide origin)."""
    key = central_key(site, part.key)
    origin = SiteOrigin(site=site, rev=part.rev, time=part.time, source=part.source, user=part.user)
    if part.op == "set":
        return Op(op="set", key=key, value=part.value, origin=origin)
    return Op(op="unset", key=key, origin=origin)


def _snapshot_op(site: str, key: str, entry: SnapshotEntry) -> Op:
    origin = SiteOrigin(site=site, rev=entry.rev, time=entry.time, source=entry.source, user=entry.user)
    return Op(op="set", key=key, value=entry.value, origin=origin)


def _differs(current: Item | None, entry: SnapshotEntry) -> bool:
    if current is None or current.value != entry.value or current.origin is None:
        return True
    return current.origin.rev != entry.rev


def _exists(client: Client, key: str) -> bool:
    try:
        client.get(key)
    except NotFound:
        return False
    return True


async def _consumer(js: JetStreamContext, durable: str) -> Any:
    config = ConsumerConfig(
        durable_name=durable,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT,
        max_ack_pending=20_000,
        filter_subject=SITES_SUBJECTS,
    )
    return await js.pull_subscribe(SITES_SUBJECTS, durable=durable, stream=SITES_STREAM, config=config)


async def _ack_all(messages: list[Msg]) -> None:
    for message in messages:
        await message.ack()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def follow_sites(config: FollowConfig, stop: asyncio.Event) -> None:
    await Follower(config, stop).run()
