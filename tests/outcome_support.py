"""What the tests of request outcomes share: a frozen hub, the kernel's tcp queues, a hub that never answers.

On loopback tcp the kernel's queues show, without timing, that a client's
connection waits to be accepted by a stopped hub, or that its request waits
unread.  A "hub" that takes requests and never answers by itself is a ROUTER
socket the test owns, announced in hub.json with the test's own (live) pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from statehub.hub.paths import Layout, read_hub_info
from statehub.testing import HubProcess, wait_until

linux_only = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's tcp queues")


def tcp_queues(port: int) -> tuple[int, int]:
    """(connections waiting to be accepted on ``port``, bytes waiting unread in its accepted ones)."""
    backlog = unread = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) != port:
            continue
        waiting = int(fields[4].split(":")[1], 16)
        if fields[3] == "0A":  # LISTEN: rx_queue is the accept backlog
            backlog += waiting
        elif fields[3] == "01":  # ESTABLISHED: bytes not read yet
            unread += waiting
    return backlog, unread


def rpc_port(data_dir: Path) -> int:
    info = read_hub_info(Layout(data_dir))
    assert info is not None and info.rpc.startswith("tcp://")
    return int(info.rpc.rsplit(":", 1)[1])


def every_thread_stopped(pid: int) -> bool:
    """Whether each thread of ``pid`` is in the stopped state ('T' in /proc/PID/task/TID/stat)."""
    try:
        states = [
            (task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in Path(f"/proc/{pid}/task").iterdir()
        ]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return bool(states) and all(state in ("T", "t") for state in states)


@contextlib.contextmanager
def stopped(hub: HubProcess) -> Iterator[None]:
    """The hub process alive but frozen (SIGSTOP) inside the block, running again after it.

    SIGSTOP is delivered to each thread in turn: until every one has stopped, the hub's I/O
    thread may still read a request out of the kernel's queue, which a test then waits to see.
    """
    os.kill(hub.pid, signal.SIGSTOP)
    try:
        assert wait_until(lambda: every_thread_stopped(hub.pid), 10), "the hub did not stop within 10 s"
        yield
    finally:
        if hub.process is not None and hub.process.poll() is None:  # not if the block killed it
            os.kill(hub.pid, signal.SIGCONT)


@contextlib.contextmanager
def silent_hub(data_dir: Path) -> Iterator[tuple[zmq.Socket[bytes], str]]:
    """A ROUTER announced as the hub of ``data_dir`` (with this process's live pid) that answers nothing itself."""
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.bind("tcp://127.0.0.1:*")
    endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
    data_dir.mkdir(parents=True, exist_ok=True)
    info = {"pid": os.getpid(), "version": "0.1.0", "protocol": 1, "rpc": endpoint, "events": endpoint, "started": 1.0}
    Layout(data_dir).hub_file.write_text(json.dumps(info))
    try:
        yield router, endpoint
    finally:
        router.close(linger=0)


def receive(router: zmq.Socket[bytes], timeout: float = 30) -> list[bytes]:
    assert router.poll(int(timeout * 1000)), "no request arrived"
    return router.recv_multipart()


