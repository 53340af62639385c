"""Storage faults under a live hub: a full disk, a file size limit, a read-only data dir, a deleted data dir.

The rule in every case: a write is either acknowledged and durable (it survives a SIGKILL and a
restart) or refused with the ``storage`` error (CLI exit 6) and absent afterwards; the hub keeps
serving reads; and once the fault clears, writes and the mirror come back without a restart.

How the faults are made:
- disk full: the data dir on a small tmpfs, filled with a ballast file (needs root for `mount`;
  skipped otherwise); and RLIMIT_FSIZE lowered on the running hub (any user);
- read-only: chmod.  Root ignores permissions, so when the tests run as root the hub runs under
  `setpriv` without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, which makes chmod bind it too;
- deleted: `shutil.rmtree` of the data dir, with the hub on loopback tcp so it stays reachable.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from statehub.client import Client
from statehub.hub.errors import StorageError
from statehub.hub.mirror import MirrorError, read_mirror
from statehub.hub.paths import Layout, read_hub_info
from statehub.testing import HubProcess, wait_until

from .conftest import run_cli

KEY = "fault.k"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
# Root without these two capabilities is bound by file permissions like any other user.
CAPLESS = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if IS_ROOT else []


class CaplessHub(HubProcess):
    """A hub that file permissions apply to, even when the tests run as root."""

    def command(self) -> list[str]:
        return [*CAPLESS, *super().command()]


def needs_permissions() -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX permissions")
    if IS_ROOT and shutil.which("setpriv") is None:
        pytest.skip("running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")


@contextlib.contextmanager
def tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A small filesystem of its own at ``mount_point`` (skips the test where mounting is not allowed)."""
    mount_point.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "statehub-test", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a ballast file until the filesystem is full; return it (delete it to clear the fault)."""
    ballast = folder / "ballast"
    with open(ballast, "wb") as handle:
        for _ in range(10_000):  # bounded: 10,000 x 64 KiB covers any tmpfs these tests mount
            try:
                handle.write(b"\0" * 65536)
                handle.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    return ballast


class Ledger:
    """Every write's outcome: acknowledged at a revision, or refused with ``storage``."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.acked: dict[int, int] = {}  # value -> revision
        self.refused: list[int] = []
        self.errors: list[StorageError] = []
        self._next = 0

    def write(self, count: int, size: int = 0) -> None:
        for _ in range(count):
            value = self._next
            self._next += 1
            try:
                self.acked[value] = self.client.set(KEY, [value, "x" * size] if size else value).rev
            except StorageError as exc:
                self.refused.append(value)
                self.errors.append(exc)

    def write_until_refused(self, size: int, limit: int = 300) -> None:
        """Write values of ``size`` bytes until one is refused, then 10 more; fail if none is refused.

        Bounded: ``limit`` writes of 32 KB (~10 MB) outgrow any slack a WAL file may still have.
        """
        for _ in range(limit):
            self.write(1, size)
            if self.refused:
                break
        assert self.refused, f"none of {limit} writes of {size} bytes was refused"
        self.write(10, size)


def assert_durable_after_sigkill(hub: HubProcess, ledger: Ledger) -> None:
    """SIGKILL and restart: every acknowledged write is in the history, no refused one is."""
    hub.kill()
    hub.start()
    with hub.client() as client:
        history = {
            (v.value[0] if isinstance(v.value, list) else v.value): v.rev
            for v in client.history(KEY, limit=10_000)
        }
    assert {value: history.get(value) for value in ledger.acked} == ledger.acked
    assert not set(ledger.refused) & set(history)


def assert_mirror_reaches(hub: HubProcess, rev: int, timeout: float = 5.0) -> None:
    mirror = Layout(hub.data_dir).mirror

    def caught_up() -> bool:
        try:
            return read_mirror(mirror).rev == rev
        except (MirrorError, OSError):
            return False

    assert wait_until(caught_up, timeout=timeout), f"the mirror did not reach revision {rev}"


# --- disk full ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_full_disk_refuses_writes_with_storage_and_recovers_when_space_returns(tmp_path: Path) -> None:
    """On a full filesystem writes get `storage` (CLI exit 6), reads go on, nothing refused appears, space back = writes back."""
    with (
        tmpfs(tmp_path / "fs", "16m") as fs,
        HubProcess(fs / "data") as hub,
        hub.client(fallback=False) as client,
    ):
        ledger = Ledger(client)
        ledger.write(20)
        ballast = fill(fs)
        ledger.write_until_refused(size=32_000)  # each needs new WAL pages: none can be had
        assert "database or disk is full" in ledger.errors[0].message
        assert str(Layout(hub.data_dir).store) in ledger.errors[0].message
        cli = run_cli(hub.data_dir, "set", KEY, "x" * 32_000)
        assert cli.returncode == 6, cli.stderr
        assert cli.stderr.startswith("error: the hub could not write its store")
        assert "hint: check the hub's disk space and permissions, then retry" in cli.stderr
        assert client.get(KEY).item.rev == max(ledger.acked.values())  # reads are still served
        ballast.unlink()
        before = len(ledger.acked)
        ledger.write(10, size=32_000)
        assert len(ledger.acked) == before + 10, "writes did not come back after the disk was freed"
        assert_mirror_reaches(hub, client.status().rev)
        assert_durable_after_sigkill(hub, ledger)


@pytest.mark.slow
def test_a_file_size_limit_refuses_writes_with_storage_and_recovers_when_lifted(hub: HubProcess) -> None:
    """With RLIMIT_FSIZE below the WAL's size, writes get `storage` (CLI exit 6); lifting it brings them back."""
    with hub.client(fallback=False) as client:
        ledger = Ledger(client)
        ledger.write(20)
        wal = Layout(hub.data_dir).store.with_name("state.db-wal")
        _soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.prlimit(hub.pid, resource.RLIMIT_FSIZE, (wal.stat().st_size, hard))
        try:
            ledger.write_until_refused(size=32_000)  # the WAL may not grow
            assert ledger.errors[0].message.startswith("the hub could not write its store")
            cli = run_cli(hub.data_dir, "set", KEY, "x" * 32_000)
            assert cli.returncode == 6, cli.stderr
            assert client.status().pid == hub.pid  # still serving
        finally:
            resource.prlimit(hub.pid, resource.RLIMIT_FSIZE, (hard, hard))
        before = len(ledger.acked)
        ledger.write(10)
        assert len(ledger.acked) == before + 10, "writes did not come back after the limit was lifted"
        assert_mirror_reaches(hub, client.status().rev)
        assert_durable_after_sigkill(hub, ledger)


# --- read-only ----------------------------------------------------------------------------


def _set_writable(data_dir: Path, writable: bool) -> None:
    for path in data_dir.iterdir():
        if path.is_file() and not path.is_socket():
            path.chmod(0o600 if writable else 0o400)
    data_dir.chmod(0o700 if writable else 0o500)


def test_a_read_only_data_dir_keeps_writes_durable_and_the_mirror_catches_up(tmp_path: Path) -> None:
    """chmod a-w under a running hub: its open store still takes durable writes; the mirror stalls, then catches up."""
    needs_permissions()
    with CaplessHub(tmp_path / "data") as hub, hub.client(fallback=False) as client:
        ledger = Ledger(client)
        ledger.write(10)
        assert_mirror_reaches(hub, 10)
        _set_writable(hub.data_dir, False)
        try:
            ledger.write(20)  # acknowledged (the files are open) or refused with storage: never anything else
            assert wait_until(lambda: "cannot write the mirror" in hub.log, 30)  # the writer tried, and failed
            assert read_mirror(Layout(hub.data_dir).mirror).rev == 10  # it cannot be replaced
        finally:
            _set_writable(hub.data_dir, True)
        assert_mirror_reaches(hub, client.status().rev)
        assert "cannot write the mirror" in hub.log
        assert_durable_after_sigkill(hub, ledger)


def test_the_hub_refuses_to_start_on_a_read_only_data_dir_and_says_what_to_fix(tmp_path: Path) -> None:
    """A hub started on a data dir it cannot write exits 1 with one line naming the folder and the fix."""
    needs_permissions()
    data_dir = tmp_path / "data"
    with HubProcess(data_dir) as hub, hub.client() as client:
        client.set(KEY, 1)
    data_dir.chmod(0o500)
    try:
        result = subprocess.run(CaplessHub(data_dir).command(), capture_output=True, text=True, timeout=20)
    finally:
        data_dir.chmod(0o700)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: the data dir {data_dir} is not writable by this user; "
        "fix its permissions or choose another with --data-dir\n"
    )


def test_a_read_only_store_is_refused_as_read_only_not_as_damaged(tmp_path: Path) -> None:
    """A store file the hub may not write is a permissions problem: the refusal must say so, not call it damaged."""
    needs_permissions()
    data_dir = tmp_path / "data"
    with HubProcess(data_dir) as hub, hub.client() as client:
        client.set(KEY, 1)
    store = Layout(data_dir).store
    store.chmod(0o400)
    result = subprocess.run(CaplessHub(data_dir).command(), capture_output=True, text=True, timeout=20)
    store.chmod(0o600)
    assert result.returncode == 1
    assert "damaged" not in result.stderr and "start empty" not in result.stderr, result.stderr
    assert "read-only" in result.stderr or "permission" in result.stderr, result.stderr
    assert store.exists()


# --- the data dir (the mirror's folder) deleted while running -----------------------------


@contextlib.contextmanager
def tcp_hub(data_dir: Path) -> Iterator[tuple[HubProcess, Client]]:
    """A hub on loopback tcp (its endpoints outlive the folder) and a client that knows them."""
    with HubProcess(data_dir, args=["--tcp"]) as hub:
        info = read_hub_info(Layout(data_dir))
        assert info is not None
        with Client(data_dir, rpc=info.rpc, events=info.events, timeout=2.0, fallback=False) as client:
            yield hub, client


def test_the_hub_keeps_serving_when_its_data_dir_is_deleted(tmp_path: Path) -> None:
    """rm -rf of the data dir (store, mirror, hub.json) under a running hub: it stays up and answers reads."""
    with tcp_hub(tmp_path / "data") as (hub, client):
        client.set(KEY, 1)
        shutil.rmtree(hub.data_dir)
        assert client.get(KEY).value == 1
        # The chores have run since (hub.json is back): reads still work after them, not just before.
        assert wait_until(Layout(hub.data_dir).hub_file.exists, 30)
        assert client.get(KEY).value == 1
        assert client.status().pid == hub.pid
        assert hub.process is not None and hub.process.poll() is None


def test_the_mirror_comes_back_after_its_folder_is_deleted(tmp_path: Path) -> None:
    """After rm -rf of the mirror's folder, the mirror is written again (recreated by the hub, or once the folder exists)."""
    with tcp_hub(tmp_path / "data") as (hub, client):
        client.set(KEY, 1)
        assert_mirror_reaches(hub, 1)
        shutil.rmtree(hub.data_dir)
        client.set(KEY, 2)  # something for the mirror to show
        if not wait_until(hub.data_dir.exists, timeout=1.5):
            hub.data_dir.mkdir(mode=0o700)  # what an operator would do
        assert_mirror_reaches(hub, client.status().rev, timeout=3.0)
        assert read_mirror(Layout(hub.data_dir).mirror).items[KEY].value == 2


def test_a_write_after_the_store_file_is_deleted_is_refused_or_survives_a_restart(tmp_path: Path) -> None:
    """An acknowledged write must survive a restart even if the store's folder was deleted; else it must be refused."""
    with tcp_hub(tmp_path / "data") as (hub, client):
        client.set(KEY, 1)
        shutil.rmtree(hub.data_dir)
        try:
            client.set(KEY, 2)
        except StorageError:
            return  # refused: nothing acknowledged that could be lost
        hub.kill()
        hub.start()
        with hub.client() as fresh:
            assert fresh.get(KEY).value == 2


def test_the_mirror_writer_never_creates_a_store_file(tmp_path: Path) -> None:
    """Recreating a deleted data dir must not make the hub's mirror thread plant an empty state.db there."""
    with tcp_hub(tmp_path / "data") as (hub, client):
        client.set(KEY, 1)
        shutil.rmtree(hub.data_dir)
        hub.data_dir.mkdir(mode=0o700)
        client.set(KEY, 2)  # asks for a mirror rewrite
        assert_mirror_reaches(hub, 2, timeout=30)  # the mirror thread has run since
        store = Layout(hub.data_dir).store
        if store.exists():
            with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as conn:
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            assert tables > 0, f"an empty {store} ({store.stat().st_size} bytes) was created"
