"""The hub's bounds: large requests, queued writes and subscriptions cannot stall its loop or grow it.

Each test loads a real hub process over its real sockets and asserts what other clients
see meanwhile: answers within their default timeout, not absolute latencies.
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import zmq

from statehub.client import Client
from statehub.hub.paths import Layout, read_hub_info
from statehub.hub.protocol import MAX_MESSAGE_BYTES, PROTOCOL_VERSION, Op, Txn
from statehub.testing import HubProcess

FLOOD_SECONDS = 40.0  # a backstop: every loop here ends on a handshake long before


def _max_size_txn(name: str) -> bytes:
    """A valid txn just under the 4 MiB limit: 1,000 keys, each a list of 4,000 zeros (4 million elements)."""
    ops = [Op(op="set", key=f"flood.{name}.k{i}", value=[0] * 4000) for i in range(1000)]
    body = msgspec.msgpack.encode(Txn(v=PROTOCOL_VERSION, ops=ops, source="flood"))
    assert MAX_MESSAGE_BYTES - 200_000 < len(body) <= MAX_MESSAGE_BYTES
    return body


class _Flooder(threading.Thread):
    """Sends one body over a REQ socket again and again, each as soon as the last is answered."""

    def __init__(self, endpoint: str, body: bytes, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.body, self.stop = endpoint, body, stop
        self.answered = 0
        self.failure = ""

    def run(self) -> None:
        context = zmq.Context()
        sock = context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        try:
            while not self.stop.is_set():
                sock.send(self.body)
                if not sock.poll(int(FLOOD_SECONDS * 1000)):
                    self.failure = "a flood txn got no answer"
                    return
                reply = msgspec.msgpack.decode(sock.recv())
                if reply.get("type") != "committed":
                    self.failure = f"a flood txn was refused: {reply}"
                    return
                self.answered += 1
        finally:
            context.destroy(linger=0)


def test_reads_are_answered_in_time_and_small_writes_between_max_size_txns_arriving_back_to_back(
    tmp_path: Path,
) -> None:
    """Two clients send 4 MiB txns of tiny elements back to back: reads with the default timeout are answered every time, and small writes go through between the large commits."""
    with HubProcess(tmp_path / "data") as hub:
        info = read_hub_info(Layout(hub.data_dir))
        assert info is not None
        stop = threading.Event()
        flooders = [_Flooder(info.rpc, _max_size_txn(name), stop) for name in ("a", "b")]
        for flooder in flooders:
            flooder.start()
        reads = writes = 0
        try:
            # A write may wait for the one large commit under way (SQLite has one writer);
            # a read never waits for a commit.
            with Client(hub.data_dir, fallback=False) as reader, Client(hub.data_dir, timeout=10) as writer:
                assert reader.timeout == 0.5  # the library's default
                for n in range(int(FLOOD_SECONDS / 0.5)):
                    writer.set("probe.n", n)
                    writes += 1
                    assert reader.get("probe.n").value == n
                    assert reader.status().rev >= n
                    reads += 2
                    if min(f.answered for f in flooders) >= 4 or any(f.failure for f in flooders):
                        break
        finally:
            stop.set()
            for flooder in flooders:
                flooder.join(FLOOD_SECONDS)
        assert not any(f.failure for f in flooders), [f.failure for f in flooders]
        assert min(f.answered for f in flooders) >= 4, "the flood did not run: nothing was measured"
        assert reads >= 8 and writes >= 4
