"""Fleet configuration, one way down: the centre's ``fleet.`` keys written into every site's hub.

At the centre, ``forward_fleet`` (run by ``follow-sites``) follows the central
hub's ``fleet.`` keys and publishes each on ``statehub.fleet.<key>`` (a stream
that keeps the last message of each key).  Each time it starts (and when the
central hub's store was replaced) it publishes every fleet key, and an unset
for each key the stream still holds as set that the centre no longer has: a
key unset while ``follow-sites`` was down is removed at the sites too.  At a site, ``apply_to_site`` (run by
the uplink) reads that stream with a durable consumer of its own and writes each
key into the site's hub with source ``fleet``; a value the hub already holds is
not written again, so a redelivery costs no revision.  The uplink also makes the
site's hub refuse every other writer of ``fleet.``: with the first fleet key it
stores the schema fragment ``FLEET_FRAGMENT`` (``[writers]`` of its prefix: only
source ``fleet``).  Sites never forward
``fleet.`` keys up, and the centre never forwards anything else down: each
prefix has one owner, so no loop can form (docs/sites.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import msgspec
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck

from statehub import Changed, Client, InvalidRequest, Item, NotFound, schema_key_for
from statehub.sites.feed import Revision, SiteFeed, Snapshot
from statehub.sites.jetstream import ACK_TIMEOUT, acknowledged
from statehub.sites.wire import (
    FLEET_PREFIX,
    FLEET_SOURCE,
    FLEET_STREAM,
    FLEET_SUBJECTS,
    SiteChange,
    decode,
    encode,
    fleet_subject,
    key_of_fleet_subject,
)

log = logging.getLogger(__name__)

FETCH_BATCH = 256
FETCH_WAIT = 1.0

# The schema fragment that makes fleet keys read-only at a site (docs/sites.md, docs/schema.md).
FLEET_FRAGMENT = f'''# Stored by statehub uplink: fleet keys come down from the centre; only the uplink writes them here.
[schema]
format = 1
prefix = "{FLEET_PREFIX}"
description = "Fleet configuration from the centre, read-only at this site (source '{FLEET_SOURCE}' only)."

[writers]
"" = ["{FLEET_SOURCE}"]
'''


# --- at the centre ---------------------------------------------------------------------------------


async def forward_fleet(
    js: JetStreamContext, make_client: Callable[[str], Client], stop: asyncio.Event
) -> None:
    """Publish the central hub's fleet keys, then every change of them, until ``stop``."""
    feed = SiteFeed(lambda: make_client("follow-sites"), prefix=FLEET_PREFIX, since=None)
    try:
        while not stop.is_set():
            parts: list[SiteChange] = []
            for step in await feed.next_steps():
                if isinstance(step, Snapshot):
                    gone = await _removed_keys(js, step)
                    log.info(
                        "fleet: publishing %d fleet keys at central revision %d, and %d removals",
                        len(step.items), step.rev, len(gone),
                    )  # fmt: skip
                    count = len(step.items) + len(gone)
                    parts += [_item_part(step, item, index, count) for index, item in enumerate(step.items)]
                    parts += [
                        _removal_part(step, key, len(step.items) + index, count)
                        for index, key in enumerate(gone)
                    ]
                elif isinstance(step, Revision):
                    parts += [_change_part(step, change, index) for index, change in enumerate(step.changes)]
            acks = [await _publish(js, part) for part in parts]
            if acks:
                await acknowledged(acks)
    finally:
        await feed.close()


def _item_part(snapshot: Snapshot, item: Item, index: int, count: int) -> SiteChange:
    return SiteChange(
        site="", epoch=snapshot.epoch, rev=snapshot.rev, index=index, count=count, prev=0,
        op="set", key=item.key, value=item.value, time=item.time, source=item.source, user=item.user,
    )  # fmt: skip


async def _removed_keys(js: JetStreamContext, snapshot: Snapshot) -> list[str]:
    """The fleet keys the stream holds as set (its last message of the key) that the centre no longer has."""
    info = await js.stream_info(FLEET_STREAM, subjects_filter=FLEET_SUBJECTS)
    current = {fleet_subject(item.key) for item in snapshot.items}
    gone = []
    for subject in sorted(info.state.subjects or {}):
        if subject in current:
            continue
        last = await js.get_last_msg(FLEET_STREAM, subject)
        try:
            was_set = decode(last.data or b"").op == "set"
        except msgspec.DecodeError:
            was_set = True  # not a fleet change: an unset replaces it (the stream keeps one message a key)
        if was_set:
            gone.append(key_of_fleet_subject(subject))
    return gone


def _removal_part(snapshot: Snapshot, key: str, index: int, count: int) -> SiteChange:
    return SiteChange(
        site="", epoch=snapshot.epoch, rev=snapshot.rev, index=index, count=count, prev=0,
        op="unset", key=key, time=time.time(),
    )  # fmt: skip


def _change_part(revision: Revision, change: Changed, index: int) -> SiteChange:
    return SiteChange(
        site="", epoch=revision.epoch, rev=revision.rev, index=index, count=len(revision.changes), prev=0,
        op=change.op, key=change.key, value=change.value, time=change.time, source=change.source, user=change.user,
    )  # fmt: skip


async def _publish(js: JetStreamContext, part: SiteChange) -> asyncio.Future[PubAck]:
    headers = {"Nats-Msg-Id": f"fleet:{part.epoch}:{part.rev}:{part.index}:{part.key}"}
    return await js.publish_async(
        fleet_subject(part.key), encode(part), wait_stall=ACK_TIMEOUT, headers=headers
    )


# --- at a site ---------------------------------------------------------------------------------------


async def apply_to_site(js: JetStreamContext, site: str, make_client: Callable[[str], Client]) -> None:
    """Write every fleet key the stream holds, then each new one, into this site's hub (runs until cancelled)."""
    config = ConsumerConfig(
        durable_name=f"fleet-{site}",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        filter_subject=FLEET_SUBJECTS,
    )
    subscription = await js.pull_subscribe(
        FLEET_SUBJECTS, durable=f"fleet-{site}", stream=FLEET_STREAM, config=config
    )
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet")
    client = await asyncio.get_running_loop().run_in_executor(pool, make_client, FLEET_SOURCE)
    try:
        owned = False  # FLEET_FRAGMENT is stored with the first fleet key, so a site without any is left as it is
        while True:
            try:
                messages = await subscription.fetch(FETCH_BATCH, timeout=FETCH_WAIT)
            except TimeoutError:  # nats-py raises its own TimeoutError or asyncio's, both this
                continue
            for message in messages:
                part = decode(message.data)
                if not owned and part.op == "set":
                    await asyncio.get_running_loop().run_in_executor(pool, own_fleet_prefix, client)
                    owned = True
                await asyncio.get_running_loop().run_in_executor(pool, _apply_fleet_key, client, part)
                await message.ack()
    finally:
        await asyncio.get_running_loop().run_in_executor(pool, client.close)
        pool.shutdown(wait=False)


def own_fleet_prefix(client: Client) -> None:
    """Store FLEET_FRAGMENT in the site's hub unless it is there; leave a fragment someone else wrote."""
    key = schema_key_for(FLEET_FRAGMENT)
    try:
        current = client.get(key)
    except NotFound:
        current = None
    if current is not None:
        if current.value != FLEET_FRAGMENT:
            log.warning("fleet: %s holds a schema fragment of this site's own; fleet keys stay as it says", key)
        return
    try:
        client.set(key, FLEET_FRAGMENT, expect=0)
    except InvalidRequest as exc:
        log.warning(
            "fleet: could not make %s read-only here (%s); give it [writers] %r = [%r] in the site's schema",
            FLEET_PREFIX, exc.message, FLEET_PREFIX, FLEET_SOURCE,
        )  # fmt: skip
        return
    log.info("fleet: %s keys are now written at this site only by the uplink (schema %s)", FLEET_PREFIX, key)


def _apply_fleet_key(client: Client, part: SiteChange) -> None:
    """Make the site's hub hold the fleet key as the centre has it (no write when it already does)."""
    if not part.key.startswith(FLEET_PREFIX):
        log.warning("fleet: ignored %r: fleet messages carry keys under %r only", part.key, FLEET_PREFIX)
        return
    try:
        current = client.get(part.key).item
    except NotFound:
        current = None
    if part.op == "unset":
        if current is not None:
            client.unset(part.key)
            log.info("fleet: unset %s", part.key)
        return
    if current is not None and current.value == part.value:
        return
    client.set(part.key, part.value)
    log.info("fleet: set %s (central revision %d)", part.key, part.rev)
