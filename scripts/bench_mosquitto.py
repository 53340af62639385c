"""Mosquitto as a peer of the benchmark: the MQTT broker plants already use, persistence on.

Mosquitto (Debian's ``mosquitto``) runs on a free 127.0.0.1 port with ``persistence true`` and a
data dir under the benchmark's temp dir.  It is **not durable per message**: it acknowledges a
QoS 1 publish (PUBACK) once the message is in memory and writes its persistence file on shutdown
and every ``autosave_interval``; a power cut loses what came since.  It is the latency reference
plants already live with, not a durability peer: the table labels it so.

Writers publish retained QoS 1 messages (the retained message is MQTT's "current value of a
key") and wait for the PUBACK; subscribers subscribe to ``lat/#`` at QoS 1.  Keys become topics
with ``/`` for ``.``.  The client is paho-mqtt (the ``bench`` extra), whose network loop runs in
a thread of its own, as it does in any Python MQTT program.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import NOTIFY_PAD, NOTIFY_PREFIX, Listener, Writer
from bench_peers import ServerProcess, free_port

ACK_TIMEOUT = 10.0


class MosquittoServer(ServerProcess):
    """mosquitto with persistence on (saved on exit and every autosave interval, not per message)."""

    name = "mosquitto"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = free_port()
        self.config = self.dir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1800\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
            "max_queued_messages 100000\n"
        )

    def command(self) -> list[str]:
        return ["mosquitto", "-c", str(self.config)]

    def is_ready(self) -> bool:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        try:
            client.connect("127.0.0.1", self.port, keepalive=10)
        except OSError:
            return False
        client.disconnect()
        return True

    def settings(self) -> dict[str, str]:
        found = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
        first = (found.stdout or found.stderr).splitlines()[:1]
        version = first[0].rpartition(" ")[2] if first else "?"
        return {"version": version, "persistence": "true (not durable per message)", "QoS": "1, retained"}

    def target(self) -> MosquittoTarget:
        return MosquittoTarget(self.port)


@dataclass(frozen=True)
class MosquittoTarget:
    port: int
    name: str = "mosquitto"

    def writer(self) -> Writer:
        return _MqttWriter(self.port)

    def listener(self, prefix: str) -> Listener:
        return _MqttListener(self.port, prefix)

    def change(self, rep: int, index: int, t_ns: int) -> tuple[str, dict[str, Any]]:
        return f"{NOTIFY_PREFIX}k{index % 10}", {"r": rep, "t": t_ns, "p": NOTIFY_PAD}


def _topic(key: str) -> str:
    return key.replace(".", "/")


def _connected(port: int) -> Any:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    return client


class _MqttWriter:
    """One connection; each publish returns once the broker has acknowledged it (QoS 1 PUBACK)."""

    def __init__(self, port: int) -> None:
        self._client = _connected(port)

    def write(self, key: str, value: dict[str, Any]) -> None:
        info = self._client.publish(_topic(key), json.dumps(value, separators=(",", ":")), qos=1, retain=True)
        info.wait_for_publish(ACK_TIMEOUT)
        if not info.is_published():
            raise RuntimeError(f"mosquitto did not acknowledge {key!r} within {ACK_TIMEOUT:.0f} s")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class _MqttListener:
    """A subscription to the prefix; paho's thread stamps each message as it arrives."""

    def __init__(self, port: int, prefix: str) -> None:
        self._messages: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self._live = threading.Event()
        self._client = _connected(port)
        self._client.on_subscribe = lambda *_args: self._live.set()
        self._client.on_message = self._on_message
        self._client.subscribe(_topic(prefix) + "#", qos=1)

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        if not message.retain:  # a retained one is an earlier repetition's value, sent on subscribing
            self._messages.put((time.monotonic_ns(), message.payload))

    def wait_live(self, timeout: float) -> bool:
        return self._live.wait(timeout)

    def receive(self, timeout: float) -> list[tuple[int, float]]:
        try:
            arrived, payload = self._messages.get(timeout=timeout)
        except queue.Empty:
            return []
        value = json.loads(payload)
        if not isinstance(value, dict) or "t" not in value:
            return []
        return [(int(value["r"]), (arrived - int(value["t"])) / 1e9)]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
