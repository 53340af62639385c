"""The peers statehub is compared with: Redis (AOF, appendfsync always) and etcd, on loopback.

Each server runs from Debian's packages (``redis-server``, ``etcd``) on free 127.0.0.1 ports,
with a data dir of its own under the benchmark's temp dir, in a session of its own (so a
Ctrl-C reaches the benchmark, which then stops it by PID).  Each is measured the way statehub
is (bench.py's drivers): one connection per writer process, sequential durable writes;
notifications through Redis keyspace notifications (pub/sub) and an etcd watch.

etcd is driven through its gRPC gateway (JSON over HTTP/1.1: /v3/kv/put, /v3/watch) with the
standard library's http.client, so no gRPC stack is needed; the gateway runs inside the etcd
process and adds a loopback hop to its own gRPC port, a cost a gRPC client would not pay
(docs/performance.md says how much that is likely to matter).
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import NOTIFY_PAD, NOTIFY_PREFIX, Listener, Writer

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_binaries() -> list[str]:
    return [name for name in ("redis-server", "etcd", "mosquitto") if shutil.which(name) is None]


class ServerProcess:
    """One peer server process, stopped by its PID (SIGTERM, then SIGKILL) however the benchmark ends."""

    name = "server"

    def __init__(self, root: Path) -> None:
        self.dir = root / self.name
        self.dir.mkdir(parents=True)
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        with open(self.dir / "server.log", "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.is_ready():
                return
            time.sleep(0.05)
        self.stop()
        log_text = (self.dir / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(
            f"{self.name} did not start within {START_TIMEOUT:.0f} s; its log ends:\n{log_text}"
        )

    @property
    def address(self) -> str:
        port = getattr(self, "port", None)
        return f"127.0.0.1:{port}" if port is not None else str(self.dir)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --- Redis ------------------------------------------------------------------------------


class RedisServer(ServerProcess):
    """redis-server with every write fsynced to its AOF before the reply, and keyspace notifications."""

    name = "redis"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = free_port()

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",  # no RDB snapshots: the AOF is the durability
            "--notify-keyspace-events", "K$",  # __keyspace@0__:<key> for string commands
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip

    def is_ready(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def settings(self) -> dict[str, str]:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, decode_responses=True)
        info = client.info("server")
        found = {"version": str(info["redis_version"])}
        for name in ("appendonly", "appendfsync", "notify-keyspace-events"):
            found.update({str(k): str(v) for k, v in client.config_get(name).items()})
        client.close()
        return found

    def target(self) -> RedisTarget:
        return RedisTarget(self.port)


@dataclass(frozen=True)
class RedisTarget:
    port: int
    name: str = "redis"

    def writer(self) -> Writer:
        return _RedisWriter(self.port)

    def listener(self, prefix: str) -> Listener:
        return _RedisListener(self.port, prefix)

    def change(self, rep: int, index: int, t_ns: int) -> tuple[str, dict[str, Any]]:
        # A keyspace notification names the key but carries no value: the key carries the time.
        return f"{NOTIFY_PREFIX}{rep}.{t_ns}", {"r": rep, "t": t_ns, "p": NOTIFY_PAD}


class _RedisWriter:
    def __init__(self, port: int) -> None:
        import redis

        self._client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)

    def write(self, key: str, value: dict[str, Any]) -> None:
        self._client.set(key, json.dumps(value, separators=(",", ":")))

    def close(self) -> None:
        self._client.close()


class _RedisListener:
    def __init__(self, port: int, prefix: str) -> None:
        import redis

        self._client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        self._pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
        self._pubsub.psubscribe(f"__keyspace@0__:{prefix}*")

    def wait_live(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._pubsub.get_message(timeout=0.1)
            if message is not None and message["type"] == "psubscribe":
                return True
        return False

    def receive(self, timeout: float) -> list[tuple[int, float]]:
        message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if message is None or message["type"] != "pmessage":
            return []
        now = time.monotonic_ns()
        key = message["channel"].decode().partition(":")[2]
        _, rep, t_ns = key.split(".")
        return [(int(rep), (now - int(t_ns)) / 1e9)]

    def close(self) -> None:
        self._pubsub.close()
        self._client.close()


# --- etcd ---------------------------------------------------------------------------------


class EtcdServer(ServerProcess):
    """A single-member etcd (every put is a raft entry fsynced to its WAL before the reply)."""

    name = "etcd"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = free_port()
        self.peer_port = free_port()

    def command(self) -> list[str]:
        client, peer = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{self.peer_port}"
        return [
            "etcd",
            "--name", "bench",
            "--data-dir", str(self.dir / "data"),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"bench={peer}",
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip

    def is_ready(self) -> bool:
        try:
            status, body = _http(self.port, "GET", "/health", None, timeout=1)
        except OSError:
            return False
        return status == 200 and json.loads(body).get("health") == "true"

    def settings(self) -> dict[str, str]:
        _, body = _http(self.port, "GET", "/version", None, timeout=5)
        return {"version": str(json.loads(body).get("etcdserver"))}

    def target(self) -> EtcdTarget:
        return EtcdTarget(self.port)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _http(
    port: int, method: str, path: str, body: dict[str, Any] | None, timeout: float
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass(frozen=True)
class EtcdTarget:
    port: int
    name: str = "etcd"

    def writer(self) -> Writer:
        return _EtcdWriter(self.port)

    def listener(self, prefix: str) -> Listener:
        return _EtcdListener(self.port, prefix)

    def change(self, rep: int, index: int, t_ns: int) -> tuple[str, dict[str, Any]]:
        return f"{NOTIFY_PREFIX}k{index % 10}", {"r": rep, "t": t_ns, "p": NOTIFY_PAD}


class _EtcdWriter:
    """One kept-alive HTTP connection; each put returns once etcd has committed it."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self._headers = {"Content-Type": "application/json"}

    def write(self, key: str, value: dict[str, Any]) -> None:
        body = json.dumps({"key": _b64(key), "value": _b64(json.dumps(value, separators=(",", ":")))})
        self._conn.request("POST", "/v3/kv/put", body, self._headers)
        response = self._conn.getresponse()
        reply = response.read()
        if response.status != 200:
            raise RuntimeError(f"etcd put {key!r}: HTTP {response.status}: {reply[:200]!r}")

    def close(self) -> None:
        self._conn.close()


class _EtcdListener:
    """A watch on the prefix; a thread reads the gateway's stream and stamps each line on arrival."""

    def __init__(self, port: int, prefix: str) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=None)
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the range [prefix, end) is the prefix
        create = {"create_request": {"key": _b64(prefix), "range_end": _b64(end)}}
        self._conn.request("POST", "/v3/watch", json.dumps(create), {"Content-Type": "application/json"})
        self._response = self._conn.getresponse()
        if self._response.status != 200:
            raise RuntimeError(f"etcd watch: HTTP {self._response.status}")
        self._lines: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="etcd-watch", daemon=True)
        self._reader.start()
        self._live = False

    def _read(self) -> None:
        try:
            while line := self._response.readline():
                self._lines.put((time.monotonic_ns(), line))
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            # close() shut the socket down under readline(); http.client then fails in
            # one of these ways, half-way through a chunk header.
            pass
        self._lines.put((0, b""))

    def wait_live(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._live and time.monotonic() < deadline:
            try:
                _, line = self._lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if not line:
                return False
            self._live = bool(json.loads(line).get("result", {}).get("created"))
        return self._live

    def receive(self, timeout: float) -> list[tuple[int, float]]:
        try:
            arrived, line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return []
        if not line:
            return []
        found = []
        for event in json.loads(line).get("result", {}).get("events", []):
            value = json.loads(base64.b64decode(event["kv"].get("value", "")) or b"{}")
            if "t" in value:
                found.append((int(value["r"]), (arrived - int(value["t"])) / 1e9))
        return found

    def close(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)  # the reader sees the end of the stream and returns
        self._reader.join(2)
        self._conn.close()
