"""The hub's socket loop: requests in, durable commits, changes out.

A Hub is the process's life: lock the data dir, open the store, bind the
sockets, announce itself (hub.json, the first mirror), run the loop, and close
everything again without letting a failing step hide why it stopped.

One thread owns every socket and the Store.  Each turn of the loop welcomes
new subscribers (``hub.publisher``) and serves the waiting requests
(``hub.dispatch``: reads answered, writes group-committed, acknowledged, then
published).  Once a heartbeat interval it does its chores
(``hub.housekeeping``), each guarded so that none can end the loop.  The
mirror is rewritten by a thread of its own (``hub.mirror_writer``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec
import zmq

from statehub.hub import __version__, inbox
from statehub.hub.atomic_file import write_atomically
from statehub.hub.committer import Committer, Outcome
from statehub.hub.data_dir import acquire_lock, prepare_data_dir
from statehub.hub.dispatch import Dispatcher
from statehub.hub.errors import InvalidRequest, StatehubError, StorageError
from statehub.hub.housekeeping import Chores, apply_inbox
from statehub.hub.liveness import EXPIRY_SOURCE, Liveness
from statehub.hub.mirror_writer import MirrorWriter
from statehub.hub.paths import HubInfo, Layout, default_endpoints, is_loopback, read_hub_info
from statehub.hub.protocol import PROTOCOL_VERSION, HubStatus, Unset
from statehub.hub.publisher import Publisher
from statehub.hub.records import Applied
from statehub.hub.schema import is_schema_key
from statehub.hub.schema_files import apply_schema_files
from statehub.hub.secret_box import SecretBox
from statehub.hub.sockets import bind, configure_router, configure_xpub
from statehub.hub.store import Store, StoreView

if TYPE_CHECKING:
    from statehub.hub.access import RemoteListeners

log = logging.getLogger(__name__)


@dataclass
class HubConfig:
    """What ``statehub serve`` was asked for (hub.command maps the options onto this)."""

    data_dir: Path
    rpc: str | None = None
    events: str | None = None
    tcp: bool = False
    heartbeat: float = 1.0
    mirror_interval: float = 0.2
    history_keep: int = 100_000
    secrets_key: Path | None = None  # default: keys/secrets.key in the data dir
    listen: str | None = None  # tcp://HOST:PORT for remote clients, CURVE-authenticated
    listen_events: str | None = None  # default: the --listen host, port + 1
    mirror_mode: int = 0o600  # 0o640 shares the mirror with the data dir's group


class Hub:
    """A bound, running hub.  Create with ``Hub.open(config)``, then ``announce()`` and ``run()``."""

    def __init__(self, config: HubConfig, layout: Layout, store: Store, lock: IO[bytes]) -> None:
        self.config = config
        self.layout = layout
        self.store = store
        self._lock = lock
        self._started = time.time()
        self._announced = False
        self._stopping = False
        self._ctx = zmq.Context()
        self.router = self._ctx.socket(zmq.ROUTER)
        self.xpub = self._ctx.socket(zmq.XPUB)
        self.endpoints: dict[str, str] = {}
        self.remote: RemoteListeners | None = None
        self.publisher = Publisher([self.xpub], epoch=store.epoch, rev=store.rev, heartbeat=config.heartbeat)
        self.mirror = MirrorWriter(
            layout.store, layout.mirror, config.mirror_interval, mode=config.mirror_mode
        )
        self.committer = Committer(store)
        self.view = StoreView(store)
        self.dispatcher = Dispatcher(
            self.committer, self.view, self.publisher, status=self._status, on_commit=self._after_commit
        )
        self.liveness = Liveness()
        self.schema_errors: list[str] = []  # schema files of the data dir that were not applied
        self._chores = Chores()
        self._wakeup_r, self._wakeup_w = socket.socketpair()

    @classmethod
    def open(cls, config: HubConfig) -> Hub:
        """Lock the data dir, open the store and bind the sockets."""
        layout = Layout(config.data_dir)
        prepare_data_dir(layout, mirror_mode=config.mirror_mode)
        lock = acquire_lock(layout)
        try:
            _remove_stale_temp_files(layout.data_dir)
            store = _open_store(config, layout)
        except BaseException:
            lock.close()
            raise
        hub = cls(config, layout, store, lock)
        try:
            hub._bind()
        except BaseException:
            hub.close()
            raise
        return hub

    def _bind(self) -> None:
        rpc, events = default_endpoints(self.layout, tcp=self.config.tcp)
        rpc, events = self.config.rpc or rpc, self.config.events or events
        for endpoint in (rpc, events):
            if not is_loopback(endpoint):
                raise InvalidRequest(
                    f"refusing to bind {endpoint}: only loopback (127.0.0.1, ::1) or ipc:// "
                    "endpoints are allowed without authentication; for remote clients use "
                    "--listen tcp://HOST:PORT (CURVE, see docs/security.md)"
                )
        configure_router(self.router)
        configure_xpub(self.xpub)
        self.endpoints["rpc"] = bind(self.router, rpc)
        self.endpoints["events"] = bind(self.xpub, events)
        self.publisher.guard(self.xpub, self.endpoints["events"])
        if self.config.listen:
            # Imported here: CURVE and its allow-list cost every other hub start ~4 ms.
            from statehub.hub.access import open_listeners

            self.remote = open_listeners(
                self._ctx, self.layout, self.config.listen, self.config.listen_events
            )
            self.endpoints.update(self.remote.endpoints)
            self.publisher.add(self.remote.xpub)
            self.publisher.guard(self.remote.xpub, self.endpoints["listen_events"])

    def _routers(self) -> list[zmq.Socket[bytes]]:
        return [self.router] if self.remote is None else [self.router, self.remote.router]

    def announce(self) -> None:
        """Apply the schema files and queued writes, write hub.json (clients find the hub by it) and the first mirror."""
        self._chores.run("applying the schema files", self._apply_schema_files)
        self._chores.run("applying queued writes", self._apply_whole_inbox)
        # The restart rule: every key with a ttl gets one whole ttl from now (docs/schema.md).
        self.liveness.track_all(self.store.lifetimes(), time.monotonic())
        self.committer.start()
        self.mirror.start()
        self._announced = True
        self.mirror.request()
        self._write_hub_file()
        log.info(
            "statehub %s ready: serving %s at revision %d (epoch %s); rpc %s, events %s, mirror %s",
            __version__,
            self.layout.store,
            self.store.rev,
            self.store.epoch,
            self.endpoints["rpc"],
            self.endpoints["events"],
            self.layout.mirror,
        )
        if self.remote is not None:
            log.info(
                "listening for CURVE clients: rpc %s, events %s; server public key %s; allow-list %s",
                self.remote.endpoints["listen_rpc"],
                self.remote.endpoints["listen_events"],
                self.remote.server_public,
                self.layout.data_dir / "curve" / "clients",
            )

    def _write_hub_file(self) -> None:
        info = HubInfo(
            pid=os.getpid(),
            version=__version__,
            protocol=PROTOCOL_VERSION,
            rpc=self.endpoints["rpc"],
            events=self.endpoints["events"],
            started=self._started,
            listen_rpc=self.endpoints.get("listen_rpc"),
            listen_events=self.endpoints.get("listen_events"),
            server_key=self.remote.server_public if self.remote is not None else None,
        )
        write_atomically(self.layout.hub_file, msgspec.json.encode(info) + b"\n", mode=0o644)

    # --- the loop ---------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its current turn and return.  Safe from any thread."""
        self._stopping = True
        with contextlib.suppress(OSError):  # already closed: the loop has ended anyway
            self._wakeup_w.send(b"\0")

    def handle_signals(self) -> None:
        """SIGINT and SIGTERM stop the hub cleanly (call from the main thread)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda _signum, _frame: self.stop())

    def run(self) -> None:
        poller = zmq.Poller()
        for sock in (*self._routers(), *self.publisher.xpubs):
            poller.register(sock, zmq.POLLIN)
        poller.register(self._wakeup_r, zmq.POLLIN)
        poller.register(self.dispatcher.intake.wakeup, zmq.POLLIN)
        poller.register(self.committer.wakeup, zmq.POLLIN)
        woken_by = {self.dispatcher.intake.wakeup.fileno(), self.committer.wakeup.fileno()}
        next_beat = time.monotonic() + self.config.heartbeat
        while not self._stopping:
            wake_at = min(next_beat, self.liveness.next_deadline() or next_beat)
            timeout = max(0.0, wake_at - time.monotonic())
            ready = dict(poller.poll(int(timeout * 1000)))
            for xpub in self.publisher.xpubs:
                if xpub in ready:
                    self.publisher.welcome(xpub)
            routers = [router for router in self._routers() if router in ready]
            if routers or not woken_by.isdisjoint(ready):
                self.dispatcher.serve(routers, ready)
            self._expire()
            if time.monotonic() >= next_beat:
                self._housekeeping()
                next_beat = time.monotonic() + self.config.heartbeat
        # What the store thread still has (a batch, a chore) is finished, acknowledged and published.
        self.committer.stop()
        self.dispatcher.serve([])
        log.info("statehub stopping at revision %d", self.store.rev)

    def _housekeeping(self) -> None:
        """The chores of each heartbeat interval; a failing one is logged and the loop goes on.

        Chores that touch the store run on the store thread, one at a time: a
        chore still running (a slow disk) is not queued again behind itself.
        """
        if self.committer.pending == 0:
            self._on_store_thread("checking the store file", lambda store: store.ensure_file())
            self._apply_inbox()
        self._chores.run("checking hub.json", self._ensure_hub_file)
        self._chores.run("publishing the heartbeat", self.publisher.heartbeat)

    def _on_store_thread(self, name: str, work: Callable[[Store], object]) -> None:
        self.committer.submit(work, lambda outcome: self._chores.run(name, outcome.result))

    def _ensure_hub_file(self) -> None:
        """Someone may delete the data dir under a running hub: put back the file clients find it by."""
        if self.layout.data_dir.is_dir() and not self.layout.hub_file.exists():
            self._write_hub_file()

    def _apply_whole_inbox(self) -> None:
        """At start, before the store thread runs: every queued write, before any client is served."""
        while inbox.pending(self.layout.data_dir, 1):  # each batch moves files out, or raises
            self._publish(apply_inbox(self.layout.data_dir, self.store))

    def _apply_inbox(self) -> None:
        """Apply a bounded batch of queued writes on the store thread; publish them when it is done."""
        data_dir = self.layout.data_dir
        self.committer.submit(
            lambda store: apply_inbox(data_dir, store),
            lambda outcome: self._chores.run("applying queued writes", lambda: self._publish(outcome.result())),
        )

    def _apply_schema_files(self) -> None:
        """At start, before the store thread runs: the data dir's schema files that changed."""
        done = apply_schema_files(self.layout.data_dir, self.store)
        self.schema_errors = done.errors
        self._publish(done.applied)

    def _publish(self, applied: list[Applied]) -> None:
        self.publisher.publish(applied)
        self._after_commit(applied)

    def _after_commit(self, applied: list[Applied]) -> None:
        """What every published commit feeds: the mirror, the ttl deadlines, a schema change's new ttls."""
        self.mirror.apply(applied)
        self.liveness.observe(applied, time.monotonic())
        if any(is_schema_key(change.key) for write in applied for change in write.changes):
            self.committer.submit(
                lambda store: store.lifetimes(),
                lambda outcome: self._chores.run(
                    "tracking ttls", lambda: self.liveness.track_all(outcome.result(), time.monotonic())
                ),
            )

    def _expire(self) -> None:
        """Unset the keys whose ttl has run out: one published ``unset`` each, source ``ttl``.

        Each is compare-and-set on the revision that was tracked, so a write that
        lands meanwhile wins and the key lives on.
        """
        due = self.liveness.due(time.monotonic())
        if not due:
            return
        writes = [Unset(v=PROTOCOL_VERSION, key=key, expect=rev, source=EXPIRY_SOURCE) for key, rev in due]
        self.committer.submit(
            lambda store: store.commit(writes, judged=False), lambda outcome: self._expired(due, outcome)
        )

    def _expired(self, due: list[tuple[str, int]], outcome: Outcome[list[Applied | StatehubError]]) -> None:
        now = time.monotonic()
        try:
            results = outcome.result()
        except Exception as exc:
            log.error("expiring %d keys failed: %s; tried again shortly", len(due), exc)
            for key, rev in due:
                self.liveness.retry(key, rev, now)
            return
        applied = []
        for (key, rev), result in zip(due, results, strict=True):
            if isinstance(result, Applied):
                applied.append(result)
                log.info("%s expired: unset at revision %d (its ttl ran out)", key, result.rev)
            else:  # written or unset since: it lives on, or is gone already
                self.liveness.retry(key, rev, now)
        self._publish(applied)

    def close(self) -> None:
        """Write the last mirror, close the sockets without lingering, release the lock.

        Never raises: it also runs after a failed start-up, whose error is the one
        to report, and one failing step (the data dir gone) must not skip the rest.
        """
        steps: list[tuple[str, Callable[[], object]]] = []
        if self._announced:
            steps.append(("writing the last mirror", self.mirror.stop))
        steps.append(("removing hub.json", self._remove_hub_file))
        if self.remote is not None:
            steps.append(("closing the --listen sockets", self.remote.close))
        steps += [
            ("stopping the intake thread", self.dispatcher.close),
            ("stopping the store thread", self.committer.close),
            ("closing the sockets", self._close_sockets),
            ("removing the ipc socket files", self._remove_ipc_files),
            ("closing the read connection", self.view.close),
            ("closing the store", self.store.close),
            ("releasing the data dir lock", self._lock.close),
        ]
        for name, step in steps:
            try:
                step()
            except Exception as exc:
                log.error("while stopping, %s failed: %s", name, exc, exc_info=not isinstance(exc, OSError))

    def _remove_hub_file(self) -> None:
        info = read_hub_info(self.layout)
        if info is not None and info.pid == os.getpid():
            self.layout.hub_file.unlink(missing_ok=True)

    def _close_sockets(self) -> None:
        self.router.close(linger=0)
        self.xpub.close(linger=0)
        self._wakeup_r.close()
        self._wakeup_w.close()
        self._ctx.destroy(linger=0)  # and any socket a failed step left open: term() would wait for it

    def _remove_ipc_files(self) -> None:
        for endpoint in self.endpoints.values():
            if endpoint.startswith("ipc://"):
                Path(endpoint[len("ipc://") :]).unlink(missing_ok=True)

    def _status(self) -> HubStatus:
        return HubStatus(
            version=__version__,
            protocol=PROTOCOL_VERSION,
            epoch=self.store.epoch,
            rev=self.view.rev,
            uptime=time.time() - self._started,
            keys=self.view.count(),
            pid=os.getpid(),
            data_dir=str(self.layout.data_dir),
            store=str(self.layout.store),
            mirror=str(self.layout.mirror),
            endpoints=dict(self.endpoints),
            writes=self.dispatcher.writes,
            commits=self.dispatcher.commits,
            schema_errors=list(self.schema_errors),
        )


def _open_store(config: HubConfig, layout: Layout) -> Store:
    """The store, or a StorageError saying whether it is unwritable or damaged, and what to do."""
    try:
        secrets = SecretBox(config.secrets_key or layout.secrets_key)
        return Store(layout.store, history_keep=config.history_keep, secrets=secrets)
    except sqlite3.DatabaseError as exc:
        if layout.store.exists() and not os.access(layout.store, os.W_OK):
            raise StorageError(
                f"the store {layout.store} is not writable by this user ({exc}); "
                "fix its permissions (the hub needs read and write), then start again"
            ) from exc
        from statehub.hub.state_files import newest_snapshot_hint  # only on this path: not a start-up cost

        raise StorageError(
            f"the store {layout.store} is damaged ({exc}); the hub will not serve it. "
            f"To recover, {newest_snapshot_hint(layout.data_dir)} "
            "(the damaged file is kept aside; see docs/operations.md)"
        ) from exc


def _remove_stale_temp_files(data_dir: Path) -> None:
    """A hub killed mid-rewrite leaves ``.NAME.PID.tmp``; holding the lock, we own them all."""
    for temp in data_dir.glob(".*.tmp"):
        temp.unlink(missing_ok=True)


def serve(config: HubConfig, *, on_ready: Any = None) -> None:
    """Run a hub until SIGINT/SIGTERM (or ``stop()``), then shut down cleanly."""
    hub = Hub.open(config)
    try:
        if threading.current_thread() is threading.main_thread():
            hub.handle_signals()
        hub.announce()
        if on_ready is not None:
            on_ready(hub)
        hub.run()
    finally:
        hub.close()
