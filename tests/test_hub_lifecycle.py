"""The hub's life around the loop: start-up failures, chores that meet a broken environment, shutdown.

Every case runs a real hub process and checks the three things an operator
relies on: the hub says what is wrong in one clear line, it keeps serving
what it still can, and it stops cleanly when asked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from statehub.client import Client
from statehub.hub.errors import StorageError
from statehub.hub.inbox import inbox_dir, rejected_dir
from statehub.hub.paths import Layout, read_hub_info
from statehub.testing import HubProcess, wait_until

KEY = "life.k"


@contextlib.contextmanager
def tcp_hub(data_dir: Path) -> Iterator[tuple[HubProcess, Client]]:
    """A hub on loopback tcp (its endpoints outlive the data dir) and a client that knows them."""
    with HubProcess(data_dir, args=["--tcp"]) as hub:
        info = read_hub_info(Layout(data_dir))
        assert info is not None
        with Client(data_dir, rpc=info.rpc, events=info.events, timeout=2.0, fallback=False) as client:
            yield hub, client


def replace_with_a_file(data_dir: Path) -> None:
    """rm -rf the data dir and create a file in its place (again if the hub recreated the folder in between)."""
    for _ in range(10):  # the hub puts a deleted folder back within a heartbeat: rarely in this window
        shutil.rmtree(data_dir, ignore_errors=True)
        try:
            fd = os.open(data_dir, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.write(fd, b"not a folder\n")
        os.close(fd)
        return
    raise AssertionError(f"{data_dir} was recreated 10 times before a file could take its place")


def test_a_data_dir_replaced_by_a_file_keeps_reads_refuses_writes_and_stops_cleanly(tmp_path: Path) -> None:
    """With its data dir replaced by a file the hub serves reads, refuses writes with `storage`, exits 0 on SIGTERM."""
    with tcp_hub(tmp_path / "data") as (hub, client):
        client.set(KEY, 1)
        replace_with_a_file(hub.data_dir)
        assert wait_until(lambda: "checking the store file failed" in hub.log, timeout=10), hub.log
        assert client.get(KEY).value == 1
        with pytest.raises(StorageError) as refused:
            client.set(KEY, 2)
        assert refused.value.message == (
            f"the data dir {hub.data_dir} was replaced by a file while the hub ran; writes are refused: "
            "move that file away, and the hub writes its store back into a new folder"
        )
        assert client.get(KEY).value == 1
        assert hub.process is not None and hub.process.poll() is None
        assert hub.terminate() == 0
    assert "Traceback" not in hub.log, hub.log
    assert hub.log.count("checking the store file failed") == 1  # rate-limited: once a minute at most


def test_the_store_is_written_back_once_the_file_in_its_place_is_moved_away(tmp_path: Path) -> None:
    """After the file that replaced the data dir is moved away, writes are accepted again and survive a restart."""
    with tcp_hub(tmp_path / "data") as (hub, client):
        client.set(KEY, 1)
        replace_with_a_file(hub.data_dir)
        with pytest.raises(StorageError):
            client.set(KEY, 2)
        hub.data_dir.unlink()
        assert client.set(KEY, 3).rev == 2
        assert Layout(hub.data_dir).store.is_file()
        hub.kill()
        hub.start()
        with hub.client() as fresh:
            assert fresh.get(KEY).value == 3


def test_a_start_up_failure_is_reported_as_itself_not_masked_by_the_shutdown(tmp_path: Path) -> None:
    """A hub that cannot bind its events endpoint exits 1 with that error alone, and leaves the data dir free."""
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        hub = HubProcess(data_dir, args=["--rpc", "tcp://127.0.0.1:*", "--events", f"tcp://127.0.0.1:{port}"])
        result = subprocess.run(hub.command(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"error: cannot bind tcp://127.0.0.1:{port}: Address already in use"), (
        result.stderr
    )
    assert not Layout(data_dir).hub_file.exists()
    with HubProcess(data_dir) as again, again.client() as client:  # the lock was released
        assert client.set(KEY, 1).rev == 1


def test_a_queued_write_that_cannot_be_set_aside_is_logged_and_the_hub_serves_on(tmp_path: Path) -> None:
    """An inbox chore that fails (rejected/ is a file) is logged at start and each minute; the hub serves; fixed, it resumes."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    inbox_dir(data_dir).mkdir(mode=0o700)
    queued = inbox_dir(data_dir) / "00000000000000000001-garbage.json"
    queued.write_text("{ not json\n")
    rejected_dir(data_dir).write_text("a file where the rejected folder goes\n")
    with HubProcess(data_dir) as hub, hub.client(fallback=False) as client:
        assert "applying queued writes failed" in hub.log
        assert client.set(KEY, 1).rev == 1
        rejected_dir(data_dir).unlink()
        assert wait_until(lambda: (rejected_dir(data_dir) / queued.name).exists(), timeout=10), hub.log
        assert wait_until(lambda: "applying queued writes works again" in hub.log, timeout=10), hub.log
        assert not queued.exists()
        assert hub.terminate() == 0
    assert "Traceback" not in hub.log, hub.log


def test_a_secret_whose_key_file_cannot_be_written_is_refused_and_the_hub_serves_on(tmp_path: Path) -> None:
    """The first secret on a hub whose keys/ folder is unusable gets `storage` naming the file; other writes go on."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    os.symlink(tmp_path / "nowhere" / "keys", data_dir / "keys")  # a dangling link: the folder cannot be made
    with HubProcess(data_dir) as hub, hub.client(fallback=False) as client:
        with pytest.raises(StorageError, match="cannot write the secrets key file .*secrets.key"):
            client.set_secret("life.password", "hunter2")
        assert client.set(KEY, 1).rev == 1
        assert hub.process is not None and hub.process.poll() is None
