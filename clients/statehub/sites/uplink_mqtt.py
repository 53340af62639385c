"""``statehub uplink mqtt://...``: each key of the site as a retained MQTT message, for the plant's own tools.

Topic ``statehub/<site>/<key with '.' as '/'>`` (``sites.wire.mqtt_topic``),
QoS 1, retained, a JSON payload ``{value, rev, time, source, user}``; an unset
publishes an empty retained payload, which clears the topic.  The site's
``$state`` topic says ``online`` (retained) while the uplink runs; the broker
publishes the Last Will ``offline`` when the uplink dies, and the uplink
itself says ``offline`` when it stops.  Every ``heartbeat`` seconds it retains
``{rev, hub_rev, time, every, hub_down}`` on ``$heartbeat``: linked, and where.

A resync makes the broker hold exactly the current keys: before publishing
them, the uplink reads back what the broker retains under ``statehub/<site>/``
(it subscribes to its own tree, then publishes a marker and waits for it:
the broker sends a subscription's retained messages before anything published
later) and clears every topic the snapshot lacks.  The broker is asked, not a
list kept here, because only the broker knows what it holds: after a lost
state dir, a broker restored from a backup, or keys that became secrets.

Like the NATS uplink it follows the hub's feed from a durable cursor, so after
a reconnect it republishes only what changed while it was away; its first
start (and a resync) publishes every key.  A session ends on any disconnect
and the next starts from the cursor: QoS 1 makes a repeat harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from statehub import Client, StatehubError
from statehub.sites.feed import Quiet, Revision, SiteFeed, Snapshot
from statehub.sites.jetstream import LinkDown
from statehub.sites.state import Ledger, run_sessions
from statehub.sites.wire import (
    mqtt_heartbeat_payload,
    mqtt_heartbeat_topic,
    mqtt_payload,
    mqtt_site_tree,
    mqtt_state_topic,
    mqtt_sync_topic,
    mqtt_topic,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
ACK_TIMEOUT = 10.0
RETAINED_TIMEOUT = 30.0  # seconds the broker may take to send back every retained message of the site
WINDOW = 1000  # messages in flight (paho's own limit is raised to match)


@dataclass(frozen=True)
class MqttConfig:
    url: str
    site: str
    make_client: Callable[[str], Client]
    state_dir: Path
    prefix: str = ""
    heartbeat: float = 30.0  # seconds between heartbeats


@dataclass
class _Sent:
    epoch: str
    rev: int
    time: float
    infos: list[mqtt.MQTTMessageInfo]


class _Broker:
    """One paho connection (its network thread running) and whether it still stands."""

    def __init__(self, config: MqttConfig) -> None:
        where = urlsplit(config.url)
        self.host, self.port = where.hostname or "127.0.0.1", where.port or 1883
        self.state_topic = mqtt_state_topic(config.site)
        self.connected = threading.Event()
        self.lost = threading.Event()
        self.why = ""
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"statehub-uplink-{config.site}")
        self.client.max_inflight_messages_set(WINDOW)
        self.client.max_queued_messages_set(0)
        self.client.will_set(self.state_topic, b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._reading: _RetainedRead | None = None

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, properties: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            self.why = f"the MQTT broker refused the connection: {reason}"
            self.lost.set()
        self.connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, properties: object
    ) -> None:
        self.why = self.why or f"the connection to the MQTT broker dropped ({reason})"
        self.lost.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        reading = self._reading
        if reading is not None:
            reading.receive(message)

    def retained(self, site: str) -> set[str]:
        """The topics the broker retains under ``statehub/<site>/`` (its ``$`` topics aside).

        Subscribe to the tree at QoS 0 (so the broker sends its retained messages
        at once instead of queueing them behind an in-flight limit, where it
        would drop the excess), then publish a marker no one else sends and wait
        for it: what came before it is the retained set.  LinkDown when the
        marker does not come back within RETAINED_TIMEOUT.
        """
        marker = mqtt_sync_topic(site)
        reading = _RetainedRead(marker, uuid.uuid4().hex.encode())
        self._reading = reading
        tree = mqtt_site_tree(site)
        try:
            self.client.subscribe(tree, 0)  # the marker's topic is in the tree
            self.client.publish(marker, reading.nonce, qos=1, retain=False)
            if not reading.done.wait(RETAINED_TIMEOUT):
                self.check()
                raise LinkDown(
                    f"the MQTT broker did not send back the site's retained messages within "
                    f"{RETAINED_TIMEOUT:.0f} s"
                )
        finally:
            self._reading = None
            self.client.unsubscribe(tree)
        return reading.topics

    def open(self) -> None:
        try:
            self.client.connect(self.host, self.port, keepalive=10)
        except OSError as exc:
            raise LinkDown(
                f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self.client.loop_start()
        if not self.connected.wait(CONNECT_TIMEOUT) or self.lost.is_set():
            raise LinkDown(self.why or f"no answer from the MQTT broker at {self.host}:{self.port}")
        self.publish(self.state_topic, b"online")

    def check(self) -> None:
        if self.lost.is_set():
            raise LinkDown(self.why)

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=1, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise LinkDown(f"MQTT publish failed: {mqtt.error_string(info.rc)}")
        return info

    def close(self, *, say_offline: bool) -> None:
        if say_offline and not self.lost.is_set():
            with contextlib.suppress(LinkDown, RuntimeError, ValueError):
                self.publish(self.state_topic, b"offline").wait_for_publish(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()


class _RetainedRead:
    """The retained topics received until the marker ``nonce`` comes back on ``marker``."""

    def __init__(self, marker: str, nonce: bytes) -> None:
        self.marker = marker
        self.nonce = nonce
        self.topics: set[str] = set()
        self.done = threading.Event()

    def receive(self, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.marker:
            if message.payload == self.nonce:
                self.done.set()
        elif message.retain and message.payload and "$" not in message.topic and not self.done.is_set():
            self.topics.add(message.topic)  # a key's topic: '$' is in the site's own topics only


class MqttUplink:
    def __init__(self, config: MqttConfig, stop: asyncio.Event) -> None:
        self.config = config
        self.stop = stop
        self.ledger = Ledger(config.state_dir, "mqtt", config.site, config.url)
        self._inflight: deque[_Sent] = deque()
        self._hub_down = ""  # why the site's hub does not answer, as the feed last said
        self.ledger.status.heartbeat_every = config.heartbeat

    async def run(self) -> None:
        await run_sessions(
            self._session,
            self.ledger,
            self.stop,
            ends=(LinkDown, StatehubError, OSError),
            why=lambda exc: getattr(exc, "message", None) or str(exc),
        )

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        broker = _Broker(self.config)
        since = None if self.ledger.cursor.is_new else (self.ledger.cursor.epoch, self.ledger.cursor.rev)
        feed = SiteFeed(lambda: self.config.make_client("uplink"), prefix=self.config.prefix, since=since)
        self._inflight.clear()
        try:
            await loop.run_in_executor(None, broker.open)
            log.info(
                "publishing site %r to %s, after revision %d",
                self.config.site,
                self.config.url,
                self.ledger.cursor.rev,
            )
            self.ledger.status.link = "up"
            next_beat = 0.0  # the first at once
            while not self.stop.is_set():
                broker.check()
                if time.monotonic() >= next_beat:
                    self._beat(broker)
                    next_beat = time.monotonic() + self.config.heartbeat
                steps = await feed.next_steps()
                for step in steps:
                    if isinstance(step, Revision):
                        infos = [
                            self._publish_change(
                                broker,
                                change.key,
                                change.op,
                                change.value,
                                step.rev,
                                change.time,
                                change.source,
                                change.user,
                            )
                            for change in step.changes
                        ]
                        self._inflight.append(_Sent(step.epoch, step.rev, step.time, infos))
                        await self._keep_window(broker)
                    elif isinstance(step, Snapshot):
                        log.warning(
                            "publishing every key at revision %d (%d keys): %s",
                            step.rev,
                            len(step.items),
                            step.reason,
                        )
                        self.ledger.status.resyncs += 1
                        self.ledger.status.last_resync = f"revision {step.rev}: {step.reason}"
                        await self._publish_snapshot(broker, step)
                    elif isinstance(step, Quiet):
                        self.ledger.status.hub_rev = max(step.hub_rev, self.ledger.cursor.rev)
                        self._hub_down = step.down
                await self._keep_window(broker)
                self._reap()
                if isinstance(steps[-1], Quiet):
                    self._save()
                else:
                    self.ledger.save_now_and_then()
            self._reap()
            self._save()
        finally:
            await feed.close()
            await loop.run_in_executor(None, lambda: broker.close(say_offline=self.stop.is_set()))

    def _beat(self, broker: _Broker) -> None:
        """Retain this uplink's heartbeat: linked, its cursor and the hub's revision (not waited for)."""
        beat = self.ledger.heartbeat(self.config.heartbeat, self._hub_down)
        broker.publish(mqtt_heartbeat_topic(self.config.site), mqtt_heartbeat_payload(beat))

    async def _publish_snapshot(self, broker: _Broker, snapshot: Snapshot) -> None:
        """Every key, retained, and every other retained topic of the site cleared; the cursor moves to the
        snapshot's revision only with the last of them."""
        loop = asyncio.get_running_loop()
        retained = await loop.run_in_executor(None, broker.retained, self.config.site)
        current = {mqtt_topic(self.config.site, item.key) for item in snapshot.items}
        gone = sorted(retained - current)
        if gone:
            log.info("clearing %d retained topics of keys this site no longer has", len(gone))
        messages = itertools.chain(
            ((topic, b"") for topic in gone),
            (
                (
                    mqtt_topic(self.config.site, item.key),
                    mqtt_payload(item.value, item.rev, item.time, item.source, item.user),
                )
                for item in snapshot.items
            ),
        )
        infos: list[mqtt.MQTTMessageInfo] = []
        for topic, payload in messages:
            infos.append(broker.publish(topic, payload))
            if len(infos) == WINDOW // 2:
                self._inflight.append(
                    _Sent(self.ledger.cursor.epoch, self.ledger.cursor.rev, time.time(), infos)
                )
                infos = []
                await self._keep_window(broker)
        self._inflight.append(_Sent(snapshot.epoch, snapshot.rev, time.time(), infos))

    def _publish_change(
        self, broker: _Broker, key: str, op: str, value: object, rev: int, when: float, source: str, user: str
    ) -> mqtt.MQTTMessageInfo:
        topic = mqtt_topic(self.config.site, key)
        payload = b"" if op == "unset" else mqtt_payload(value, rev, when, source, user)
        return broker.publish(topic, payload)

    async def _keep_window(self, broker: _Broker) -> None:
        loop = asyncio.get_running_loop()
        while sum(len(sent.infos) for sent in self._inflight) > WINDOW:
            broker.check()
            waiting = next(info for info in self._inflight[0].infos if not info.is_published())
            await loop.run_in_executor(None, waiting.wait_for_publish, ACK_TIMEOUT)
            if not waiting.is_published():
                raise LinkDown("no acknowledgement from the MQTT broker in time")
            self._reap()

    def _reap(self) -> None:
        while self._inflight and all(info.is_published() for info in self._inflight[0].infos):
            sent = self._inflight.popleft()
            self.ledger.advance(sent.epoch, sent.rev, len(sent.infos))
        self.ledger.status.lag_revisions = max(0, self.ledger.status.hub_rev - self.ledger.cursor.rev)
        self.ledger.status.lag_seconds = time.time() - self._inflight[0].time if self._inflight else 0.0

    def _save(self) -> None:
        self.ledger.save_cursor()
        self.ledger.save_status(now=False)


async def run_mqtt_uplink(config: MqttConfig, stop: asyncio.Event) -> None:
    await MqttUplink(config, stop).run()
