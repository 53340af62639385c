"""The hub's socket loop: requests in, durable commits, changes out.

One thread owns every socket and the Store.  Each turn of the loop drains all
waiting requests, answers the reads, commits the writes together in one SQLite
transaction (group commit), acknowledges each writer once that transaction is
durable, then publishes the resulting changes in revision order.  The mirror is
rewritten by a thread of its own (hub.mirror.MirrorWriter).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import zmq

from statehub.hub import __version__, inbox
from statehub.hub.access import RemoteListeners, open_listeners
from statehub.hub.atomic_file import write_atomically
from statehub.hub.data_dir import acquire_lock, prepare_data_dir
from statehub.hub.errors import InvalidRequest, StatehubError, StorageError, reply_from_error
from statehub.hub.mirror import MirrorWriter
from statehub.hub.paths import HubInfo, Layout, default_endpoints, is_loopback, read_hub_info
from statehub.hub.protocol import (
    HEARTBEAT_TOPIC,
    MAX_HISTORY_LIMIT,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Changed,
    Error,
    Get,
    Heartbeat,
    History,
    HubStatus,
    List,
    Reply,
    Request,
    RotateKey,
    Set,
    Snapshot,
    Status,
    Txn,
    Unset,
    Versions,
    Welcome,
    WriteRequest,
    request_decoder,
)
from statehub.hub.rules import check_key, check_prefix, check_write
from statehub.hub.secret_box import SecretBox
from statehub.hub.sockets import bind, configure_router, configure_xpub
from statehub.hub.store import Outcome, Store

log = logging.getLogger(__name__)

MAX_BATCH = 4096  # requests drained per turn: bounds the time one turn can take
MAX_FRAMES = 8  # a REQ request arrives as [identity, b"", body]; more is garbage


@dataclass
class HubConfig:
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


@dataclass(frozen=True)
class _Envelope:
    """A request's routing frames and the ROUTER it came in on, where its reply must go."""

    router: zmq.Socket[bytes]
    frames: list[bytes]


@dataclass
class _Pending:
    envelope: _Envelope
    write: WriteRequest
    received: float = field(default_factory=time.perf_counter)


class Hub:
    """A bound, running hub.  Create with ``Hub.open(config)``, then ``run()``."""

    def __init__(self, config: HubConfig, layout: Layout, store: Store, lock: Any) -> None:
        self.config = config
        self.layout = layout
        self.store = store
        self._lock = lock
        self._started = time.time()
        self._published_rev = store.rev
        self._stopping = False
        self._writes = 0
        self._commits = 0
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = request_decoder().decode
        self._ctx = zmq.Context()
        self.router = self._ctx.socket(zmq.ROUTER)
        self.xpub = self._ctx.socket(zmq.XPUB)
        self.endpoints: dict[str, str] = {}
        self.remote: RemoteListeners | None = None
        self.mirror = MirrorWriter(layout.store, layout.mirror, config.mirror_interval, mode=config.mirror_mode)
        self._wakeup_r, self._wakeup_w = socket.socketpair()

    @classmethod
    def open(cls, config: HubConfig) -> Hub:
        """Lock the data dir, open the store and bind the sockets."""
        layout = Layout(config.data_dir)
        prepare_data_dir(layout, mirror_mode=config.mirror_mode)
        lock = acquire_lock(layout)
        _remove_stale_temp_files(layout.data_dir)
        try:
            secrets = SecretBox(config.secrets_key or layout.secrets_key)
            store = Store(layout.store, history_keep=config.history_keep, secrets=secrets)
        except sqlite3.DatabaseError as exc:
            lock.close()
            if layout.store.exists() and not os.access(layout.store, os.W_OK):
                raise StorageError(
                    f"the store {layout.store} is not writable by this user ({exc}); "
                    "fix its permissions (the hub needs read and write), then start again"
                ) from exc
            from statehub.hub.restore import newest_snapshot_hint

            raise StorageError(
                f"the store {layout.store} is damaged ({exc}); the hub will not serve it. "
                f"To recover, {newest_snapshot_hint(layout.data_dir)} "
                "(the damaged file is kept aside; see docs/operations.md)"
            ) from exc
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
        if self.config.listen:
            self.remote = open_listeners(
                self._ctx, self.layout, self.config.listen, self.config.listen_events
            )
            self.endpoints.update(self.remote.endpoints)

    def _routers(self) -> list[zmq.Socket[bytes]]:
        return [self.router] if self.remote is None else [self.router, self.remote.router]

    def _xpubs(self) -> list[zmq.Socket[bytes]]:
        return [self.xpub] if self.remote is None else [self.xpub, self.remote.xpub]

    def announce(self) -> None:
        """Apply queued writes, write hub.json (clients find the hub by it) and the first mirror."""
        self._apply_inbox()
        self.mirror.start()
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
        for sock in (*self._routers(), *self._xpubs()):
            poller.register(sock, zmq.POLLIN)
        poller.register(self._wakeup_r, zmq.POLLIN)
        next_beat = time.monotonic() + self.config.heartbeat
        while not self._stopping:
            timeout = max(0.0, next_beat - time.monotonic())
            ready = dict(poller.poll(int(timeout * 1000)))
            for xpub in self._xpubs():
                if xpub in ready:
                    self._welcome_subscribers(xpub)
            routers = [router for router in self._routers() if router in ready]
            if routers:
                self._serve_requests(routers)
            if time.monotonic() >= next_beat:
                self._check_files()
                self._apply_inbox()
                self._heartbeat()
                next_beat = time.monotonic() + self.config.heartbeat
        log.info("statehub stopping at revision %d", self.store.rev)

    def close(self) -> None:
        """Write the last mirror, close the sockets without lingering, release the lock."""
        if self.endpoints:
            self.mirror.stop()
            info = read_hub_info(self.layout)
            if info is not None and info.pid == os.getpid():
                self.layout.hub_file.unlink(missing_ok=True)
        if self.remote is not None:
            self.remote.close()
        self.router.close(linger=0)
        self.xpub.close(linger=0)
        self._ctx.term()
        for endpoint in self.endpoints.values():
            if endpoint.startswith("ipc://"):
                Path(endpoint[len("ipc://") :]).unlink(missing_ok=True)
        self._wakeup_r.close()
        self._wakeup_w.close()
        self.store.close()
        self._lock.close()

    # --- requests ---------------------------------------------------------------

    def _serve_requests(self, routers: list[zmq.Socket[bytes]]) -> None:
        """Drain every ready ROUTER into one batch, so local and remote writes share a commit."""
        pending: list[_Pending] = []
        for router in routers:
            self._drain(router, pending)
        if pending:
            self._commit(pending)

    def _drain(self, router: zmq.Socket[bytes], pending: list[_Pending]) -> None:
        for _ in range(MAX_BATCH):
            # Asking is cheaper than the zmq.Again exception that ends every turn otherwise.
            if not int(router.get(zmq.EVENTS)) & zmq.POLLIN:
                break
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(frames) > MAX_FRAMES or len(frames) < 3 or frames[-2] != b"":
                log.warning("dropped a message of %d frames that is not a request", len(frames))
                continue
            envelope, body = _Envelope(router, frames[:-1]), frames[-1]
            try:
                answer = self._dispatch(body)
            except Exception:  # one request must never end the loop that serves everyone
                log.exception("internal error on a request of %d bytes", len(body))
                answer = Error(code="internal", message="internal error in the hub; it has been logged")
            if isinstance(answer, (Set, Unset, Txn)):
                pending.append(_Pending(envelope, answer))
            else:
                self._reply(envelope, answer)

    def _dispatch(self, body: bytes) -> Reply | WriteRequest:
        """Decode and validate one request; answer it unless it is a write to commit."""
        if len(body) > MAX_MESSAGE_BYTES:
            return Error(
                code="invalid",
                message=f"request of {len(body)} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes",
            )
        try:
            request = self._decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            # msgspec raises UnicodeDecodeError for invalid UTF-8 and RecursionError for
            # absurd nesting, outside its own exception tree.
            return _malformed(body, exc)
        if request.v != PROTOCOL_VERSION:
            return _wrong_version(request.v)
        try:
            if isinstance(request, (Set, Unset, Txn)):
                check_write(request, len(body))
                return request
            return self._read(request)
        except InvalidRequest as exc:
            return Error(code="invalid", message=str(exc))
        except StatehubError as exc:
            return reply_from_error(exc)
        except sqlite3.Error as exc:
            return Error(code="storage", message=f"the hub could not read its store: {exc}")

    def _read(self, request: Request) -> Reply:
        if isinstance(request, Get):
            check_key(request.key)
            return self.store.get(request.key, reveal=request.reveal)
        if isinstance(request, Snapshot) and request.at_rev is not None:
            check_prefix(request.prefix)
            return self.store.state_at(request.at_rev, request.prefix, sealed=request.sealed)
        if isinstance(request, Snapshot):
            check_prefix(request.prefix)
            return self.store.list(request.prefix, sealed=request.sealed)
        if isinstance(request, List):
            check_prefix(request.prefix)
            return self.store.list(request.prefix)
        if isinstance(request, RotateKey):
            return self.store.rotate_secrets()
        if isinstance(request, History):
            check_key(request.key)
            if not 1 <= request.limit <= MAX_HISTORY_LIMIT:
                raise InvalidRequest(f"history limit {request.limit} is outside 1..{MAX_HISTORY_LIMIT}")
            return Versions(key=request.key, versions=self.store.history(request.key, request.limit))
        assert isinstance(request, Status)
        return self._status()

    def _status(self) -> HubStatus:
        return HubStatus(
            version=__version__,
            protocol=PROTOCOL_VERSION,
            epoch=self.store.epoch,
            rev=self.store.rev,
            uptime=time.time() - self._started,
            keys=self.store.count(),
            pid=os.getpid(),
            data_dir=str(self.layout.data_dir),
            store=str(self.layout.store),
            mirror=str(self.layout.mirror),
            endpoints=dict(self.endpoints),
            writes=self._writes,
            commits=self._commits,
        )

    def _commit(self, pending: list[_Pending]) -> None:
        try:
            outcomes = self.store.commit([p.write for p in pending])
        except StorageError as exc:
            log.error("%s; %d writes refused", exc.message, len(pending))
            for p in pending:
                self._reply(p.envelope, reply_from_error(exc))
            return
        self._commits += 1
        self._writes += len(pending)
        # The commit is durable: acknowledge first, since a writer waits on its reply
        # while subscribers are not waiting for anything in particular.
        for p, outcome in zip(pending, outcomes, strict=True):
            self._reply(p.envelope, outcome.reply)
            if log.isEnabledFor(logging.DEBUG):
                _log_write(p, outcome.reply)
        self._publish_changes(outcomes)

    def _check_files(self) -> None:
        """Someone may delete the data dir under a running hub: put back what clients rely on."""
        self.store.ensure_file()
        if not self.layout.hub_file.exists() and self.layout.data_dir.exists():
            self._write_hub_file()

    def _apply_inbox(self) -> None:
        """Commit writes queued while the hub was down, in the order they were made."""
        for queued in inbox.pending(self.layout.data_dir):
            if queued.write is None:
                inbox.reject(self.layout.data_dir, queued, queued.reason)
                continue
            try:
                check_write(queued.write)
                outcome: Outcome = self.store.commit([queued.write])[0]
            except InvalidRequest as exc:
                inbox.reject(self.layout.data_dir, queued, f"invalid: {exc}")
                continue
            except StorageError as exc:
                log.error("queued writes wait: %s", exc.message)
                return
            self._publish_changes([outcome])
            if isinstance(outcome.reply, Error):
                inbox.reject(self.layout.data_dir, queued, outcome.reply.message)
                log.warning("queued write %s refused: %s", queued.path.name, outcome.reply.message)
            else:
                queued.path.unlink()
                log.info("queued write %s applied at revision %d", queued.path.name, outcome.reply.rev)

    def _publish_changes(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            for change in outcome.changes:
                self._publish(change.key.encode(), change)
        self._published_rev = self.store.rev
        self.mirror.request()

    def _reply(self, envelope: _Envelope, reply: Reply) -> None:
        try:
            envelope.router.send_multipart([*envelope.frames, self._encode(reply)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            # The client went away (EHOSTUNREACH) or is not reading: its loss, not ours.
            log.debug("reply dropped: %s", exc)

    # --- publishing -------------------------------------------------------------

    def _publish(self, topic: bytes, message: Changed | Heartbeat | Welcome) -> None:
        """Send to the subscribers of every XPUB (local and --listen), encoded once."""
        frames = [topic, self._encode(message)]
        for xpub in self._xpubs():
            xpub.send_multipart(frames)

    def _heartbeat(self) -> None:
        beat = Heartbeat(
            epoch=self.store.epoch,
            rev=self._published_rev,
            time=time.time(),
            interval=self.config.heartbeat,
        )
        self._publish(HEARTBEAT_TOPIC, beat)

    def _welcome_subscribers(self, xpub: zmq.Socket[bytes]) -> None:
        """Welcome new subscriptions on the XPUB they came in on (the others need no welcome)."""
        for _ in range(MAX_BATCH):
            try:
                frame = xpub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame[:1] == b"\x01":
                topic = frame[1:]
                welcome = Welcome(
                    epoch=self.store.epoch,
                    rev=self._published_rev,
                    topic=topic.decode("utf-8", "replace"),
                    interval=self.config.heartbeat,
                )
                xpub.send_multipart([topic, self._encode(welcome)])


def _remove_stale_temp_files(data_dir: Path) -> None:
    """A hub killed mid-rewrite leaves ``.NAME.PID.tmp``; holding the lock, we own them all."""
    for temp in data_dir.glob(".*.tmp"):
        temp.unlink(missing_ok=True)


def _malformed(body: bytes, exc: Exception) -> Error:
    try:
        version = msgspec.msgpack.decode(body, type=_Versioned).v
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        version = PROTOCOL_VERSION
    if version != PROTOCOL_VERSION:
        return _wrong_version(version)
    if isinstance(exc, RecursionError):
        return Error(code="invalid", message="request nested too deeply; values may nest at most 32 levels")
    if isinstance(exc, (msgspec.DecodeError, UnicodeDecodeError)):
        return Error(code="protocol", message=f"undecodable request: {exc}")
    return Error(code="protocol", message=f"malformed request: {exc}")


class _Versioned(msgspec.Struct):
    v: int


def _wrong_version(version: int) -> Error:
    return Error(
        code="protocol",
        message=f"unsupported protocol version {version}; this hub speaks version {PROTOCOL_VERSION}",
    )


def _log_write(p: _Pending, reply: Reply) -> None:
    keys = [op.key for op in p.write.ops] if isinstance(p.write, Txn) else [p.write.key]
    outcome = reply.code if isinstance(reply, Error) else f"rev {getattr(reply, 'rev', '?')}"
    log.debug(
        "write %s -> %s by %s/%s in %.2f ms",
        ",".join(keys[:5]) + ("..." if len(keys) > 5 else ""),
        outcome,
        p.write.source or "?",
        p.write.user or "?",
        (time.perf_counter() - p.received) * 1000,
    )


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
