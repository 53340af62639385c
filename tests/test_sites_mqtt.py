"""MQTT out against a real mosquitto: retained keys for late subscribers, unsets that clear, a Last Will."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from statehub import Op
from statehub.testing import HubProcess, wait_until

from .servers import Mosquitto, mosquitto
from .sites_support import uplink

DEADLINE = 30.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with mosquitto(tmp_path / "mosquitto") as server:
        yield server


class Listener:
    """An MQTT subscriber to statehub/#: the last payload seen on each topic (b"" for a cleared one)."""

    def __init__(self, port: int) -> None:
        self.topics: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._message
        self.client.on_connect = lambda client, *_: client.subscribe("statehub/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.topics[message.topic] = message.payload

    def get(self, topic: str) -> bytes | None:
        with self.lock:
            return self.topics.get(topic)

    def value(self, topic: str) -> Any:
        payload = self.get(topic)
        return json.loads(payload)["value"] if payload else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained_topics(port: int, tree: str) -> dict[str, bytes]:
    """What the broker retains under ``tree``: subscribe, then wait for a marker sent after the subscription."""
    marker = f"probe/{uuid.uuid4().hex}"
    found: dict[str, bytes] = {}
    done = threading.Event()

    def message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == marker:
            done.set()
        elif message.retain and not done.is_set():
            found[message.topic] = message.payload

    probe = mqtt.Client(CallbackAPIVersion.VERSION2)
    probe.on_message = message
    probe.connect("127.0.0.1", port)
    probe.loop_start()
    try:
        probe.subscribe([(tree, 0), (marker, 0)])
        probe.publish(marker, b"", qos=1)
        assert done.wait(DEADLINE), "the broker did not return the marker"
    finally:
        probe.disconnect()
        probe.loop_stop()
    return found


def cursor_of(state_dir: Path, site: str) -> int:
    path = state_dir / f"mqtt-{site}.cursor.json"
    return int(json.loads(path.read_text())["rev"]) if path.exists() else 0


def test_a_late_subscriber_sees_every_key_and_an_unset_clears_and_a_killed_uplink_is_offline(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """Retained QoS 1 messages carry every current key; an unset empties its topic; SIGKILL publishes offline."""
    with HubProcess(tmp_path / "north") as north, north.client() as client:
        client.set("plant.rate", 30)
        client.set("plant.inlet/a", {"open": True})  # a '/' in a segment travels as %2F
        client.set_secret("plant.password", "hunter2")
        link = uplink(north, broker.url, "north", tmp_path).start()
        try:
            client.set("plant.gone", 1)
            client.unset("plant.gone")
            client.set("plant.rate", 31)
            late = Listener(broker.port)
            try:
                assert wait_until(lambda: late.value("statehub/north/plant/rate") == 31, DEADLINE), (
                    link.text()
                )
                assert late.value("statehub/north/plant/inlet%2Fa") == {"open": True}
                assert late.get("statehub/north/$state") == b"online"
                record = json.loads(late.get("statehub/north/plant/rate") or b"{}")
                assert set(record) == {"value", "rev", "time", "source", "user"}
                assert late.get("statehub/north/plant/gone") in (None, b"")  # cleared: no retained message
                assert not any("password" in topic for topic in late.topics), "a secret was published"
                client.unset("plant.rate")
                assert wait_until(lambda: late.get("statehub/north/plant/rate") == b"", DEADLINE)
                link.kill()
                assert wait_until(lambda: late.get("statehub/north/$state") == b"offline", DEADLINE)
            finally:
                late.close()
        finally:
            link.stop()


def test_after_a_restart_the_uplink_republishes_only_what_changed(tmp_path: Path, broker: Mosquitto) -> None:
    """A restarted uplink resumes from its cursor: the keys that did not change are not sent again."""
    with HubProcess(tmp_path / "north") as north, north.client() as client:
        for index in range(20):
            client.set(f"plant.k{index}", index)
        with uplink(north, broker.url, "north", tmp_path) as link:
            watcher = Listener(broker.port)
            try:
                assert wait_until(lambda: watcher.value("statehub/north/plant/k19") == 19, DEADLINE), (
                    link.text()
                )
            finally:
                watcher.close()
        client.set("plant.k0", 100)
        counted: list[str] = []
        counter = mqtt.Client(CallbackAPIVersion.VERSION2)
        counter.on_connect = lambda c, *_: c.subscribe("statehub/north/plant/#", qos=1)
        counter.on_message = lambda c, u, message: (
            counted.append(message.topic) if not message.retain else None
        )
        counter.connect("127.0.0.1", broker.port)
        counter.loop_start()
        try:
            assert wait_until(lambda: counter.is_connected(), DEADLINE)
            with uplink(north, broker.url, "north", tmp_path) as link:
                assert wait_until(lambda: "statehub/north/plant/k0" in counted, DEADLINE), link.text()
                status = json.loads((tmp_path / "state-north" / "mqtt-north.status.json").read_text())
                assert wait_until(
                    lambda: (
                        json.loads((tmp_path / "state-north" / "mqtt-north.status.json").read_text())[
                            "cursor"
                        ]
                        == 21
                    ),
                    DEADLINE,
                )
        finally:
            counter.disconnect()
            counter.loop_stop()
        assert counted == ["statehub/north/plant/k0"], "only the key that changed while it was away"
        assert status["site"] == "north"


def test_a_resync_clears_the_retained_topics_of_keys_removed_while_the_uplink_was_away(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """After a resync the broker retains exactly the site's current keys: one unset meanwhile is cleared."""
    state = tmp_path / "state-north"
    with HubProcess(tmp_path / "north", args=["--history-keep", "5"]) as north, north.client() as client:
        for key in ("plant.a", "plant.b", "plant.c"):
            client.set(key, 1)
        with uplink(north, broker.url, "north", tmp_path) as link:
            assert wait_until(lambda: cursor_of(state, "north") == 3, DEADLINE), link.text()
        client.unset("plant.b")
        for start in range(0, 1200, 400):  # the hub prunes its history every 1,000 revisions: a resync
            client.batch([[Op(op="set", key="plant.d", value=value)] for value in range(start, start + 400)])
        head = client.status().rev
        with uplink(north, broker.url, "north", tmp_path) as link:
            assert wait_until(lambda: cursor_of(state, "north") == head, DEADLINE), link.text()
            resyncs = link.text().count(
                "publishing every key at revision"
            )  # the first start, then the resync
            assert resyncs == 2, link.text()
            retained = retained_topics(broker.port, "statehub/north/#")
    keys = {topic for topic in retained if "$" not in topic}
    assert keys == {"statehub/north/plant/a", "statehub/north/plant/c", "statehub/north/plant/d"}
    assert json.loads(retained["statehub/north/plant/d"])["value"] == 1199


def test_the_uplink_retains_a_heartbeat_that_advances_while_nothing_changes(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """statehub/<site>/$heartbeat is retained with the cursor and renewed every --heartbeat seconds."""
    with HubProcess(tmp_path / "north") as north, north.client() as client:
        client.set("plant.rate", 1)
        watcher = Listener(broker.port)
        try:
            with uplink(north, broker.url, "north", tmp_path, "--heartbeat", "0.2") as link:
                topic = "statehub/north/$heartbeat"
                assert wait_until(
                    lambda: json.loads(watcher.get(topic) or b"{}").get("rev") == 1, DEADLINE
                ), link.text()
                first = json.loads(watcher.get(topic) or b"{}")
                assert (first["hub_rev"], first["every"], first["hub_down"]) == (1, 0.2, "")
                assert wait_until(
                    lambda: json.loads(watcher.get(topic) or b"{}")["time"] > first["time"], DEADLINE
                )
        finally:
            watcher.close()


def test_a_key_that_becomes_a_secret_is_cleared_from_the_broker(tmp_path: Path, broker: Mosquitto) -> None:
    """Its retained plain value is replaced by an empty one, and the secret is not published."""
    with HubProcess(tmp_path / "north") as north, north.client() as client:
        client.set("plant.password", "plain-old")
        watcher = Listener(broker.port)
        try:
            with uplink(north, broker.url, "north", tmp_path) as link:
                topic = "statehub/north/plant/password"
                assert wait_until(lambda: watcher.value(topic) == "plain-old", DEADLINE), link.text()
                client.set_secret("plant.password", "hunter2")
                assert wait_until(lambda: watcher.get(topic) == b"", DEADLINE), link.text()
            assert retained_topics(broker.port, topic) == {}
        finally:
            watcher.close()


def test_a_heartbeat_of_no_seconds_is_refused_with_what_to_give(tmp_path: Path) -> None:
    """--heartbeat 0 is an error naming the option, the value and what is allowed."""
    from .conftest import run_cli

    result = run_cli(tmp_path, "uplink", "mqtt://127.0.0.1:1", "--site", "north", "--heartbeat", "0")
    assert result.returncode != 0
    assert "invalid --heartbeat 0: give the seconds between heartbeats, more than 0" in result.stderr
