"""``statehub uplink mqtt://...``: each key of the site as a retained MQTT message, for the plant's own tools.

Topic ``statehub/<site>/<key with '.' as '/'>`` (``sites.wire.mqtt_topic``),
QoS 1, retained, a JSON payload ``{value, rev, time, source, user}``; an unset
publishes an empty retained payload, which clears the topic.  The site's
``$state`` topic says ``online`` (retained) while the uplink runs; the broker
publishes the Last Will ``offline`` when the uplink dies, and the uplink
itself says ``offline`` when it stops.

Like the NATS uplink it follows the hub's feed from a durable cursor, so after
a reconnect it republishes only what changed while it was away; its first
start (and a resync) publishes every key.  A session ends on any disconnect
and the next starts from the cursor: QoS 1 makes a repeat harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
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
from statehub.sites.wire import mqtt_payload, mqtt_state_topic, mqtt_topic

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
ACK_TIMEOUT = 10.0
WINDOW = 1000  # messages in flight (paho's own limit is raised to match)


@dataclass(frozen=True)
class MqttConfig:
    url: str
    site: str
    make_client: Callable[[str], Client]
    state_dir: Path
    prefix: str = ""


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


class MqttUplink:
    def __init__(self, config: MqttConfig, stop: asyncio.Event) -> None:
        self.config = config
        self.stop = stop
        self.ledger = Ledger(config.state_dir, "mqtt", config.site, config.url)
        self._inflight: deque[_Sent] = deque()

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
            while not self.stop.is_set():
                broker.check()
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

    async def _publish_snapshot(self, broker: _Broker, snapshot: Snapshot) -> None:
        """Every key, retained; the cursor moves to the snapshot's revision only with its last key."""
        infos: list[mqtt.MQTTMessageInfo] = []
        for item in snapshot.items:
            infos.append(
                self._publish_change(
                    broker, item.key, "set", item.value, item.rev, item.time, item.source, item.user
                )
            )
            if len(infos) == WINDOW // 2:
                self._inflight.append(_Sent(self.ledger.cursor.epoch, self.ledger.cursor.rev, time.time(), infos))
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
