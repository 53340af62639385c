"""``GET /api/events``: the change feed as Server-Sent Events, one stream per browser tab.

A stream starts with either the exact revisions the client missed (it sent
``Last-Event-ID: epoch:rev`` and the log still reaches back to it) or one
``resync`` event holding every item under its prefix; then a ``status`` event,
then ``change`` events as revisions commit.  ``change`` and ``resync`` carry
``id: epoch:rev``; ``status`` carries none, so it can never move a client's
resume point.  Every ``heartbeat`` seconds a comment and a ``status`` event keep
proxies open and let the page tell a silent stream from a quiet hub.

Each stream drains its own bounded queue and writes whatever has piled up in
one chunk, so a busy feed costs a slow client fewer, larger writes.  A stream
whose queue overflows is ended: its browser reconnects with its last id and is
served from the log, or resyncs.  It never slows the follower or other streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from statehub import Changed, Item
from statehub.web.feed import Entry, Feed, Listener, Message, Resync, Status, event_id

RETRY_MS = 2000  # how long a browser waits before reconnecting
_encode = msgspec.json.Encoder().encode


def item_json(item: Item) -> dict[str, Any]:
    """An item as the HTTP API shows it: every field, always (a secret's value is the placeholder).

    Except ``ttl``, there only when the key has one (as ``statehub get --json`` prints it).
    """
    shown: dict[str, Any] = {
        "key": item.key,
        "value": item.value,
        "rev": item.rev,
        "created_rev": item.created_rev,
        "time": item.time,
        "source": item.source,
        "user": item.user,
        "secret": item.secret,
    }
    if item.ttl is not None:
        shown["ttl"] = item.ttl
    return shown


def change_json(change: Changed) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "key": change.key,
        "op": change.op,
        "rev": change.rev,
        "time": change.time,
        "source": change.source,
        "user": change.user,
        "secret": change.secret,
    }
    if change.op == "set":
        shown["value"] = change.value
    if change.value_omitted:
        shown["value_omitted"] = True
    if change.backfill:  # history written after the fact (ingest-eds --replay): a dashboard may skip it
        shown["backfill"] = True
    if change.ttl is not None:  # the key goes this many seconds after this set unless written again
        shown["ttl"] = change.ttl
    return shown


def status_json(status: Status, heartbeat: float) -> dict[str, Any]:
    return {
        "state": status.state,
        "epoch": status.epoch,
        "rev": status.rev,
        "reason": status.reason,
        "since": status.since,
        "mirror_rev": status.mirror_rev,
        "mirror_written": status.mirror_written,
        "heartbeat": heartbeat,
    }


def frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE event; the JSON is one line, so one ``data:`` line holds it."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return head.encode() + b"data: " + _encode(data) + b"\n\n"


def entry_frame(entry: Entry, prefix: str) -> bytes:
    cached = entry.encoded.get(prefix)
    if cached is None:
        changes = [change_json(change) for change in entry.under(prefix)]
        cached = frame("change", {"epoch": entry.epoch, "rev": entry.rev, "changes": changes}, entry.id)
        if len(entry.encoded) < 8:  # a handful of prefixes share an entry; never grow without bound
            entry.encoded[prefix] = cached
    return cached


def resync_frame(feed: Feed, prefix: str, reason: str = "") -> bytes:
    """The whole state under ``prefix`` as it is now, with the id of the revision it is at.

    Entries queued behind a Resync are already in it; the page applies a change
    only when it is newer than the row, so they change nothing.
    """
    items = [item_json(item) for item in feed.items_under(prefix)]
    data = {"epoch": feed.epoch, "rev": feed.rev, "reason": reason, "items": items}
    return frame("resync", data, event_id(feed.epoch, feed.rev))


class EventStream:
    """The body of one SSE response: backlog first, then whatever the listener receives."""

    def __init__(self, feed: Feed, prefix: str, last: tuple[str, int] | None, heartbeat: float) -> None:
        self._feed = feed
        self._prefix = prefix
        self._heartbeat = heartbeat
        # Listen before reading the backlog, in the same turn of the loop: nothing can fall between.
        self._listener: Listener = feed.listen(prefix)
        self._backlog = self._start(last)

    def _start(self, last: tuple[str, int] | None) -> list[bytes]:
        feed = self._feed
        chunks = [f"retry: {RETRY_MS}\n\n".encode()]
        missed = feed.since(*last, self._prefix) if last else None
        if missed is None:
            reason = "first connection" if last is None else f"cannot resume from {last[0]}:{last[1]}"
            chunks.append(resync_frame(feed, self._prefix, reason))
        else:
            chunks.extend(entry_frame(entry, self._prefix) for entry in missed)
        chunks.append(frame("status", status_json(feed.status, self._heartbeat)))
        return chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        listener = self._listener
        try:
            yield b"".join(self._backlog)
            self._backlog = []
            while True:
                if not listener.pending and not listener.dropped and not self._feed.closing:
                    listener.wake.clear()
                    try:
                        async with asyncio.timeout(self._heartbeat):
                            await listener.wake.wait()
                    except TimeoutError:  # a quiet stretch: say we are here, and how things stand
                        yield b": heartbeat\n" + frame(
                            "status", status_json(self._feed.status, self._heartbeat)
                        )
                        continue
                chunk = self._drain()  # everything queued, in one write
                if chunk:
                    yield chunk
                if listener.dropped or self._feed.closing:
                    return
        finally:
            self._feed.forget(listener)

    def _drain(self) -> bytes:
        pending = self._listener.pending
        parts = []
        while pending:
            parts.append(self._render(pending.popleft()))
        return b"".join(parts)

    def _render(self, message: Message) -> bytes:
        if isinstance(message, Entry):
            return entry_frame(message, self._prefix)
        if isinstance(message, Resync):
            return resync_frame(self._feed, self._prefix, message.reason)
        return frame("status", status_json(message, self._heartbeat))
