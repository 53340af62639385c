"""One turn's requests: drain the ROUTERs, answer the reads, commit the writes together, reply, publish.

This is the write path.  Every waiting request is drained (up to MAX_BATCH
per ROUTER); reads are answered at once from committed state; writes are
collected and committed in one SQLite transaction (group commit).  Each
writer is acknowledged only after that transaction is durable, and before
its changes are published: a writer is blocked on its reply, subscribers are
not waiting for anything in particular.  A refusal of any kind becomes an
``error`` reply here, through ``errors.reply_from_error`` only.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import zmq

from statehub.hub.errors import StatehubError, StorageError, reply_from_error
from statehub.hub.log_limit import RateLimitedLog
from statehub.hub.protocol import (
    Batch,
    BatchCommitted,
    Committed,
    HubStatus,
    Reply,
    Set,
    Txn,
    Unset,
    WriteRequest,
)
from statehub.hub.publisher import Publisher
from statehub.hub.records import Applied, AppliedBatch
from statehub.hub.requests import RequestDecoder, answer
from statehub.hub.store import Store

log = logging.getLogger(__name__)

MAX_BATCH = 4096  # requests drained per ROUTER and turn: bounds the time one turn can take
MAX_FRAMES = 8  # a REQ request arrives as [identity, b"", body]; more is garbage


@dataclass(frozen=True)
class _Envelope:
    """A request's routing frames and the ROUTER it came in on, where its reply must go."""

    router: zmq.Socket[bytes]
    frames: list[bytes]


@dataclass
class _Pending:
    envelope: _Envelope
    write: WriteRequest | Batch
    received: float = field(default_factory=time.perf_counter)


class Dispatcher:
    """Serves requests for the hub's server thread, which owns the sockets, the store and the publisher."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        *,
        status: Callable[[], HubStatus],
        on_commit: Callable[[], None],
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.writes = 0  # write requests committed since start
        self.commits = 0  # SQLite transactions since start
        self._status = status
        self._on_commit = on_commit
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = RequestDecoder()
        self._storage_faults = RateLimitedLog(log)

    def serve(self, routers: list[zmq.Socket[bytes]]) -> None:
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
            envelope = _Envelope(router, frames[:-1])
            answered = self._answer(frames[-1])
            if isinstance(answered, (Set, Unset, Txn, Batch)):
                pending.append(_Pending(envelope, answered))
            else:
                self._reply(envelope, answered)

    def _answer(self, body: bytes) -> Reply | WriteRequest | Batch:
        """The reply to one request body, or the checked write to commit with the others."""
        try:
            request = self._decode(body)
            if isinstance(request, (Set, Unset, Txn, Batch)):
                return request
            return answer(self.store, request, self._status)
        except StatehubError as exc:
            return reply_from_error(exc)
        except sqlite3.Error as exc:
            return reply_from_error(StorageError(f"the hub could not read its store: {exc}"))
        except Exception:  # one request must never end the loop that serves everyone
            log.exception("internal error on a request of %d bytes", len(body))
            return reply_from_error(StatehubError("internal error in the hub; it has been logged"))

    def _commit(self, pending: list[_Pending]) -> None:
        try:
            results = self.store.commit([p.write for p in pending])
        except StorageError as exc:
            self._storage_faults.report(
                "commit", logging.ERROR, f"refused {len(pending)} writes: {exc.message}"
            )
            self._reply_all(pending, exc)
            return
        except Exception:  # rolled back: nothing was applied, so nothing is acknowledged
            log.exception("internal error committing %d writes; none was applied", len(pending))
            self._reply_all(pending, StatehubError("internal error in the hub; it has been logged"))
            return
        if self._storage_faults.clear("commit"):
            log.warning("the store %s takes writes again", self.store.path)
        self.commits += 1
        self.writes += len(pending)
        applied: list[Applied] = []
        for p, result in zip(pending, results, strict=True):
            if isinstance(result, Applied):
                reply: Reply = Committed(epoch=self.store.epoch, rev=result.rev, duplicate=result.duplicate)
                applied.append(result)
            elif isinstance(result, AppliedBatch):
                reply = BatchCommitted(epoch=self.store.epoch, revs=result.revs, duplicate=result.duplicate)
                applied.extend(result.applied)
            else:
                reply = reply_from_error(result)
            self._reply(p.envelope, reply)
            if log.isEnabledFor(logging.DEBUG):
                _log_write(p, reply)
        self.publisher.publish(applied)
        self._on_commit()

    def _reply_all(self, pending: list[_Pending], error: StatehubError) -> None:
        reply = reply_from_error(error)
        for p in pending:
            self._reply(p.envelope, reply)

    def _reply(self, envelope: _Envelope, reply: Reply) -> None:
        try:
            envelope.router.send_multipart([*envelope.frames, self._encode(reply)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            # The client went away (EHOSTUNREACH) or is not reading: its loss, not ours.
            log.debug("reply dropped: %s", exc)


def _log_write(p: _Pending, reply: Reply) -> None:
    if isinstance(p.write, Batch):
        keys = [op.key for write in p.write.writes for op in write.ops]
    else:
        keys = [op.key for op in p.write.ops] if isinstance(p.write, Txn) else [p.write.key]
    if isinstance(reply, BatchCommitted):
        outcome = f"revs {reply.revs[0]}..{reply.revs[-1]}"
    else:
        outcome = f"rev {reply.rev}" if isinstance(reply, Committed) else getattr(reply, "code", "?")
    log.debug(
        "write %s -> %s by %s/%s in %.2f ms",
        ",".join(keys[:5]) + ("..." if len(keys) > 5 else ""),
        outcome,
        p.write.source or "?",
        p.write.user or "?",
        (time.perf_counter() - p.received) * 1000,
    )
