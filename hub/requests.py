"""One request body in: a checked Request, and the answer to every request that is not a write.

Decoding refuses what docs/protocol.md ("Limits and hostile input") says it
refuses, by raising the error tree's classes; the server turns any of them
into the ``error`` reply.  Writes are only checked here: the server commits
them together (group commit).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from statehub.hub import feed, replies
from statehub.hub.errors import InvalidRequest, ProtocolError
from statehub.hub.protocol import (
    MAX_HISTORY_LIMIT,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Batch,
    Changes,
    Get,
    History,
    HubStatus,
    List,
    Reply,
    Request,
    Rotated,
    Set,
    Snapshot,
    Status,
    Txn,
    Unset,
    request_decoder,
)
from statehub.hub.records import Rotation
from statehub.hub.rules import check_batch, check_key, check_prefix, check_write
from statehub.hub.store import StoreView

# msgspec raises UnicodeDecodeError for invalid UTF-8 and RecursionError for absurd
# nesting, outside its own exception tree.
_UNDECODABLE = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class _Versioned(msgspec.Struct):
    v: int


class RequestDecoder:
    """Turns a request body into a checked Request, or raises the refusal."""

    def __init__(self) -> None:
        self._decode = request_decoder().decode

    def __call__(self, body: bytes) -> Request:
        if len(body) > MAX_MESSAGE_BYTES:
            raise InvalidRequest(
                f"request of {len(body)} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes"
            )
        try:
            request = self._decode(body)
        except _UNDECODABLE as exc:
            raise _malformed(body, exc) from None
        if request.v != PROTOCOL_VERSION:
            raise _wrong_version(request.v)
        if isinstance(request, (Set, Unset, Txn)):
            check_write(request, len(body))
        elif isinstance(request, Batch):
            check_batch(request, len(body))
        return request


def answer(store: StoreView, request: Request, status: Callable[[], HubStatus]) -> Reply:
    """The reply to a request that only reads (``status`` makes the hub's status), on the server thread's view."""
    if isinstance(request, Changes):
        return feed.change_page(store, request)
    if isinstance(request, Get) and request.at_rev is not None:
        if request.reveal:
            raise InvalidRequest("reveal reads a secret as it is now; it cannot be combined with at_rev")
        return feed.item_at(store, request.key, request.at_rev)
    if isinstance(request, Get):
        check_key(request.key)
        entry = store.entry(request.key)
        if request.reveal and entry.is_secret:
            return replies.revealed_item(entry, store.open_secret(entry), store.ttl_rules())
        return replies.item(entry, store.ttl_rules())
    if isinstance(request, Snapshot) and request.at_rev is not None:
        check_prefix(request.prefix)
        entries = store.state_at(request.at_rev, request.prefix)
        return replies.items(store.epoch, request.at_rev, entries, store.ttl_rules(), sealed=request.sealed)
    if isinstance(request, (Snapshot, List)):
        check_prefix(request.prefix)
        sealed = isinstance(request, Snapshot) and request.sealed
        rev, entries, rules = store.current(request.prefix)
        return replies.items(store.epoch, rev, entries, rules, sealed=sealed)
    if isinstance(request, History):
        check_key(request.key)
        if not 1 <= request.limit <= MAX_HISTORY_LIMIT:
            raise InvalidRequest(f"history limit {request.limit} is outside 1..{MAX_HISTORY_LIMIT}")
        return replies.versions(request.key, store.history(request.key, request.limit))
    if isinstance(request, Status):
        return status()
    # A bug if reached: the dispatcher hands writes (and key rotation) to the store thread.
    raise TypeError(f"a {type(request).__name__} request writes: the store thread runs it, not answer()")


def rotated(rotation: Rotation) -> Rotated:
    return Rotated(secrets=rotation.secrets, versions=rotation.versions)


def _malformed(body: bytes, exc: Exception) -> InvalidRequest | ProtocolError:
    try:
        version = msgspec.msgpack.decode(body, type=_Versioned).v
    except _UNDECODABLE:
        version = PROTOCOL_VERSION
    if version != PROTOCOL_VERSION:
        return _wrong_version(version)
    if isinstance(exc, RecursionError):
        return InvalidRequest("request nested too deeply; values may nest at most 32 levels")
    if isinstance(exc, (msgspec.DecodeError, UnicodeDecodeError)):
        return ProtocolError(f"undecodable request: {exc}")
    return ProtocolError(f"malformed request: {exc}")


def _wrong_version(version: int) -> ProtocolError:
    return ProtocolError(
        f"unsupported protocol version {version}; this hub speaks version {PROTOCOL_VERSION}"
    )
