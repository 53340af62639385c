"""One turn's requests: drain the ROUTERs, answer the reads, commit the writes together, reply, publish.

This is the write path.  Every waiting request is drained (up to MAX_BATCH
per ROUTER and TURN_BYTES per turn); reads are answered at once from
committed state; writes are collected and committed in one SQLite
transaction (group commit): a batch of under 64 KiB right here, a larger one
on the store thread (``hub.committer``) while the loop goes on serving and
gathering the next batch.  Each writer is
acknowledged only after that transaction is durable, and before its changes
are published: a writer is blocked on its reply, subscribers are not waiting
for anything in particular.  Large requests are decoded and checked off the
loop (``hub.intake``).  A refusal of any kind becomes an ``error`` reply
here, through ``errors.reply_from_error`` only.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field

import msgspec
import zmq

from statehub.hub.checkpoint import WalBound
from statehub.hub.committer import Committer, Outcome
from statehub.hub.errors import StatehubError, StorageError, reply_from_error
from statehub.hub.intake import LARGE_BYTES, Intake
from statehub.hub.log_limit import RateLimitedLog
from statehub.hub.protocol import (
    Batch,
    BatchCommitted,
    Committed,
    Error,
    HubStatus,
    Reply,
    Request,
    RotateKey,
    Set,
    Txn,
    Unset,
    WriteRequest,
)
from statehub.hub.publisher import Publisher
from statehub.hub.records import Applied, AppliedBatch, Rotation
from statehub.hub.requests import RequestDecoder, answer, rotated
from statehub.hub.store import Store, StoreView, WriteResult

log = logging.getLogger(__name__)

MAX_BATCH = 4096  # requests drained per ROUTER and turn: bounds the time one turn can take
# Request bytes drained per turn: a turn that took in a few large writes commits and replies,
# so the small requests queued behind them are served next turn, not after every large one.
TURN_BYTES = 1024 * 1024
MAX_FRAMES = 8  # a REQ request arrives as [identity, b"", body]; more is garbage
_POLLIN = int(zmq.POLLIN)  # a plain int: ``& zmq.POLLIN`` builds a PollEvent flag on every request


@dataclass(frozen=True)
class _Envelope:
    """A request's routing frames and the ROUTER it came in on, where its reply must go."""

    router: zmq.Socket[bytes]
    frames: list[bytes]


@dataclass
class _Pending:
    envelope: _Envelope
    write: WriteRequest | Batch
    size: int  # of the request body: a large write commits in a batch of its own
    received: float = field(default_factory=time.perf_counter)


class Dispatcher:
    """Serves requests for the hub's server thread, which owns the sockets and the publisher.

    Reads are answered from ``view`` (the server thread's read connection);
    writes are committed a batch at a time, a small batch on this thread and a
    large one on the store thread (``committer``): while that one commits, the
    next gathers, and it is submitted when the first is acknowledged and
    published.
    """

    def __init__(
        self,
        committer: Committer,
        view: StoreView,
        publisher: Publisher,
        *,
        status: Callable[[], HubStatus],
        on_commit: Callable[[list[Applied]], None],
    ) -> None:
        self.committer = committer
        self.store = committer.store  # its attributes only (path, epoch, generation): the store thread writes it
        self.view = view
        self.publisher = publisher
        self.writes = 0  # write requests committed since start
        self.commits = 0  # SQLite transactions since start
        self._status = status
        self._on_commit = on_commit
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = _decoder_or_refusal(RequestDecoder())
        self._storage_faults = RateLimitedLog(log)
        self._waiting: list[_Pending] = []  # writes for the next batch
        self._committing = False  # a batch is with the store thread
        self.wal = WalBound(committer.store.path)  # when the store thread checkpoints (hub.checkpoint)
        self.intake: Intake[_Envelope, Request | Error] = Intake(_decoder_or_refusal(RequestDecoder()))

    def close(self) -> None:
        self.intake.close()

    def serve(self, routers: list[zmq.Socket[bytes]], woken: Container[int] | None = None) -> None:
        """Finish what the store thread did, take in every ready ROUTER's requests, and send the next batch.

        ``woken``: the file descriptors the poll found readable (None: look at every wakeup).
        """
        self.committer.finish(woken=woken is None or self.committer.wakeup.fileno() in woken)
        if self.view.generation != self.store.generation:
            self.view.reopen(self.store.generation)  # the store thread wrote the file back
        for envelope, checked in self.intake.take(woken=woken is None or self.intake.wakeup.fileno() in woken):
            self._route(envelope, checked, LARGE_BYTES)
        budget = TURN_BYTES
        for router in routers:
            budget = self._drain(router, budget)
        self._commit_waiting()

    def _drain(self, router: zmq.Socket[bytes], budget: int) -> int:
        """Take requests from ``router`` until it is empty or the turn's byte ``budget`` is spent."""
        for _ in range(MAX_BATCH):
            if budget <= 0:
                break
            # Asking is cheaper than the zmq.Again exception that ends every turn otherwise.
            if not int(router.get(zmq.EVENTS)) & _POLLIN:
                break
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(frames) > MAX_FRAMES or len(frames) < 3 or frames[-2] != b"":
                log.warning("dropped a message of %d frames that is not a request", len(frames))
                continue
            envelope, body = _Envelope(router, frames[:-1]), frames[-1]
            if len(body) >= LARGE_BYTES:
                self.intake.submit(envelope, body)
                continue
            budget -= len(body)
            self._route(envelope, self._decode(body), len(body))
        return budget

    def _route(self, envelope: _Envelope, request: Request | Error, size: int) -> None:
        """Answer a read (or pass a refusal on) now; a write waits for the next batch."""
        if isinstance(request, (Set, Unset, Txn, Batch)):
            self._waiting.append(_Pending(envelope, request, size))
        elif isinstance(request, RotateKey):
            self.committer.submit(_rotate, lambda outcome: self._reply(envelope, self._rotated(outcome)))
        elif isinstance(request, Error):
            self._reply(envelope, request)
        else:
            self._reply(envelope, self._answer(request))

    def _answer(self, request: Request) -> Reply:
        try:
            return answer(self.view, request, self._status)
        except StatehubError as exc:
            return reply_from_error(exc)
        except sqlite3.Error as exc:
            return reply_from_error(StorageError(f"the hub could not read its store: {exc}"))
        except Exception:  # one request must never end the loop that serves everyone
            log.exception("internal error answering a %s request", type(request).__name__)
            return reply_from_error(StatehubError("internal error in the hub; it has been logged"))

    def _rotated(self, outcome: Outcome[Rotation]) -> Reply:
        try:
            return rotated(outcome.result())
        except StatehubError as exc:
            return reply_from_error(exc)
        except Exception:
            log.exception("internal error rotating the secrets key")
            return reply_from_error(StatehubError("internal error in the hub; it has been logged"))

    def _commit_waiting(self) -> None:
        """Commit the waiting writes, unless a batch is still committing on the store thread.

        The small writes go together; a large one (a commit of up to 4 MiB that
        takes a good part of a second on a busy machine) goes alone, and only when
        no small write is waiting, so a small write never waits for more than the
        one large commit already under way.  Writers are concurrent, so this
        order is as good as the order of arrival.
        """
        if not self._waiting or self._committing:
            return
        batch = [p for p in self._waiting if p.size < LARGE_BYTES] or self._waiting[:1]
        chosen = {id(p) for p in batch}
        self._waiting = [p for p in self._waiting if id(p) not in chosen]
        writes = [p.write for p in batch]
        if sum(p.size for p in batch) < LARGE_BYTES and self.committer.pending == 0:
            # A small batch and an idle store thread: committed here, with no hand-off.  The two
            # thread hand-offs and the GIL passing between the threads cost more than the overlap
            # buys (8 writers: ~1,700 writes/s handed off, ~2,100 here); while it commits, the next
            # requests wait in the sockets and make the next batch.  Reads wait for at most this
            # commit of under 64 KiB; a large batch still goes to the store thread.
            self._committed(batch, self.committer.run_here(lambda store: store.commit(writes)))
            return
        self._committing = True
        self.committer.submit(lambda store: store.commit(writes), lambda outcome: self._committed(batch, outcome))

    def _committed(self, batch: list[_Pending], outcome: Outcome[list[WriteResult]]) -> None:
        """Acknowledge a committed batch, then publish its changes (server thread)."""
        self._committing = False
        try:
            results = outcome.result()
        except StorageError as exc:
            self._storage_faults.report("commit", logging.ERROR, f"refused {len(batch)} writes: {exc.message}")
            self._reply_all(batch, exc)
            return
        except Exception:  # rolled back: nothing was applied, so nothing is acknowledged
            log.exception("internal error committing %d writes; none was applied", len(batch))
            self._reply_all(batch, StatehubError("internal error in the hub; it has been logged"))
            return
        if self._storage_faults.clear("commit"):
            log.warning("the store %s takes writes again", self.store.path)
        self.commits += 1
        self.writes += len(batch)
        applied: list[Applied] = []
        for p, result in zip(batch, results, strict=True):
            if isinstance(result, Applied):
                reply: Reply = Committed(
                    epoch=self.store.epoch, rev=result.rev, duplicate=result.duplicate, warnings=result.warnings
                )
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
        self._on_commit(applied)
        if self.wal.due():
            self.committer.submit(lambda store: store.checkpoint(), self._checkpointed)

    def _checkpointed(self, outcome: Outcome[None]) -> None:
        try:
            outcome.result()
        except (sqlite3.Error, OSError) as exc:  # the mirror thread's checkpoint is the backstop
            self._storage_faults.report("checkpoint", logging.WARNING, f"cannot checkpoint the store: {exc}")

    def _reply_all(self, batch: list[_Pending], error: StatehubError) -> None:
        reply = reply_from_error(error)
        for p in batch:
            self._reply(p.envelope, reply)

    def _reply(self, envelope: _Envelope, reply: Reply) -> None:
        try:
            envelope.router.send_multipart([*envelope.frames, self._encode(reply)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            # The client went away (EHOSTUNREACH) or is not reading: its loss, not ours.
            log.debug("reply dropped: %s", exc)


def _rotate(store: Store) -> Rotation:
    return store.rotate_secrets()


def _decoder_or_refusal(decode: RequestDecoder) -> Callable[[bytes], Request | Error]:
    """``decode``, with a refusal turned into its ``error`` reply (safe on the intake thread: no store, no socket)."""

    def decode_or_refuse(body: bytes) -> Request | Error:
        try:
            return decode(body)
        except StatehubError as exc:
            return reply_from_error(exc)
        except Exception:  # one request must never end the thread that serves everyone
            log.exception("internal error decoding a request of %d bytes", len(body))
            return reply_from_error(StatehubError("internal error in the hub; it has been logged"))

    return decode_or_refuse


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
