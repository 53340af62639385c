"""The statehub wire protocol: every message that crosses a socket, as msgspec Structs.

docs/protocol.md is the contract; this module is its Python form.  Requests and
replies are single MessagePack frames.  Every message is a map whose ``type``
field names its kind, so each union below maps one-to-one onto a Rust enum with
``#[serde(tag = "type")]``.  Unknown fields are ignored on decode, which is what
lets a newer peer add optional fields without breaking an older one.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

PROTOCOL_VERSION = 1

# Limits enforced by the hub (documented in docs/protocol.md, "Limits").
MAX_KEY_LENGTH = 256
MAX_VALUE_BYTES = 1024 * 1024
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_TXN_OPS = 1000
MAX_BATCH_WRITES = 1000  # writes in one batch request, each its own revision
MAX_BATCH_OPS = 10_000  # ops in all the writes of one batch
MAX_VALUE_DEPTH = 32
MAX_TTL_SECONDS = 366 * 24 * 3600  # a write's ttl: a key that must live longer needs none
MAX_NAME_LENGTH = 64  # source and user names
MAX_HISTORY_LIMIT = 10_000
# A page of the change feed (the ``changes`` request): at most this many changes,
# and about this many bytes, unless its first revision alone is larger.
DEFAULT_PAGE_LIMIT = 1000
MAX_PAGE_LIMIT = 10_000
DEFAULT_PAGE_BYTES = 1024 * 1024
MAX_PAGE_BYTES = 16 * 1024 * 1024
# A published change carries its value only up to this size; a larger one is
# sent with ``value_omitted`` and subscribers fetch it.  This is what bounds the
# memory a stalled subscriber can pin in the hub's send queue.
MAX_INLINE_VALUE_BYTES = 4096

# What every read, the mirror and the change stream show instead of a secret's value.
SECRET_PLACEHOLDER = "<secret>"

HEARTBEAT_TOPIC = b"@hb"


class _Message(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    """Base of every wire message: a map tagged by its ``type`` field."""


class SiteOrigin(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where a change was first made, when a hub stores another hub's change (docs/sites.md).

    ``rev``, ``time``, ``source`` and ``user`` are the site hub's own: the
    central hub's revision, time and writer are the follower's.
    """

    site: str
    rev: int
    time: float
    source: str = ""
    user: str = ""


# --- requests (client -> hub, over REQ/ROUTER) ------------------------------


class Get(_Message, tag="get"):
    v: int
    key: str
    reveal: bool = False  # a secret's plaintext instead of the placeholder
    at_rev: int | None = None  # the item as it was right after this revision (from history)


class List(_Message, tag="list"):
    v: int
    prefix: str = ""


class Snapshot(_Message, tag="snapshot"):
    v: int
    prefix: str = ""
    at_rev: int | None = None  # rebuild the state as it was right after this revision
    sealed: bool = False  # secrets as Fernet tokens (for exports) instead of the placeholder


class History(_Message, tag="history"):
    v: int
    key: str
    limit: int = 100


class Status(_Message, tag="status"):
    v: int


# How a write treats secrets: "" writes a plain value (a key that is a secret
# stays one, and the placeholder written back leaves it unchanged); "value" makes
# the key a secret holding this value; "sealed" takes a token from a sealed export.
SecretMode = Literal["", "value", "sealed"]


class Set(_Message, tag="set"):
    v: int
    key: str
    value: Any
    expect: int | None = None
    secret: SecretMode = ""
    request_id: str = ""
    source: str = ""
    user: str = ""
    backfill: bool = False  # history written after the fact (a replayed export), not a live change
    ttl: float | None = None  # seconds: the hub removes the key this long after this write (docs/schema.md)
    origin: SiteOrigin | None = None  # the change was first made at another hub (every op of it)


class Unset(_Message, tag="unset"):
    v: int
    key: str
    expect: int | None = None
    request_id: str = ""
    source: str = ""
    user: str = ""
    backfill: bool = False
    origin: SiteOrigin | None = None  # the change was first made at another hub (every op of it)


class Op(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One operation inside a Txn."""

    op: Literal["set", "unset"]
    key: str
    value: Any = None
    expect: int | None = None
    secret: SecretMode = ""
    ttl: float | None = None  # set only: see Set.ttl
    origin: SiteOrigin | None = None  # this op's origin, where the ops of one txn differ (a site's resync)


class Txn(_Message, tag="txn"):
    v: int
    ops: list[Op]
    request_id: str = ""
    source: str = ""
    user: str = ""
    backfill: bool = False
    origin: SiteOrigin | None = None  # the change was first made at another hub (every op of it)


class BatchWrite(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One write inside a Batch: the ops of one revision, like a txn's."""

    ops: list[Op]


class Batch(_Message, tag="batch"):
    """Several writes, each under its own new revision, in order, committed all together or not at all.

    One request and one durable transaction for what would be ``len(writes)``
    txns: the way to replay history fast (docs/protocol.md, "Writes").
    """

    v: int
    writes: list[BatchWrite]
    request_id: str = ""
    source: str = ""
    user: str = ""
    backfill: bool = False


class RotateKey(_Message, tag="rotate_key"):
    """Re-encrypt every secret (current values and history) under a new key."""

    v: int


class Changes(_Message, tag="changes"):
    """The committed changes after revision ``after``, in revision order: one page of the feed."""

    v: int
    after: int
    prefix: str = ""  # only changes of keys under it (the revision sequence stays global)
    limit: int = DEFAULT_PAGE_LIMIT  # changes per page, 1..MAX_PAGE_LIMIT
    max_bytes: int = DEFAULT_PAGE_BYTES  # about this many bytes per page, 1..MAX_PAGE_BYTES


Request = Get | List | Snapshot | History | Status | Set | Unset | Txn | Batch | RotateKey | Changes
WriteRequest = Set | Unset | Txn

# --- replies (hub -> client) -----------------------------------------------


class Item(_Message, tag="item"):
    key: str
    value: Any
    rev: int
    created_rev: int
    time: float
    source: str = ""
    user: str = ""
    secret: bool = False  # the value is the placeholder, a token (sealed) or revealed
    origin: SiteOrigin | None = None  # its last change was first made at another hub
    # Seconds the key lives after its last write (that write's ttl, else its schema rule's); None: no ttl.
    ttl: float | None = None


class Items(_Message, tag="items"):
    epoch: str
    rev: int
    items: list[Item]


class Version(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One history row of a key: what a revision did to it."""

    rev: int
    op: Literal["set", "unset"]
    value: Any = None
    prev_rev: int = 0  # the key's revision before this change; 0: it did not exist
    prev_value: Any = None
    time: float
    source: str = ""
    user: str = ""
    secret: bool = False  # value and prev_value of a secret show as the placeholder
    backfill: bool = False  # written as history after the fact (see Set.backfill)
    origin: SiteOrigin | None = None  # this change was first made at another hub


class Versions(_Message, tag="versions"):
    key: str
    versions: list[Version]


class HubStatus(_Message, tag="hub_status"):
    version: str
    protocol: int
    epoch: str
    rev: int
    uptime: float
    keys: int
    pid: int
    data_dir: str
    store: str
    mirror: str
    endpoints: dict[str, str]
    writes: int = 0  # write requests committed since start
    commits: int = 0  # SQLite transactions since start (fewer than writes: group commit)
    # Schema files in the data dir that could not be applied.  (One field only: a 16th would
    # change the map header of every status reply, and the golden vectors pin its bytes.)
    schema_errors: list[str] = []


class Committed(_Message, tag="committed"):
    epoch: str
    rev: int
    duplicate: bool = False
    warnings: list[str] = []  # accepted, but the schema does not know these keys (policy warn)


class BatchCommitted(_Message, tag="batch_committed"):
    """A batch is durable: ``revs[i]`` is the revision its i-th write got."""

    epoch: str
    revs: list[int]
    duplicate: bool = False


class ConflictDetail(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Why one compare-and-set condition failed: what the key holds now."""

    key: str
    expected: int
    rev: int = 0
    exists: bool = False
    value: Any = None
    time: float = 0.0
    source: str = ""
    user: str = ""


class Rotated(_Message, tag="rotated"):
    secrets: int  # current values re-encrypted
    versions: int  # history values re-encrypted


class Error(_Message, tag="error"):
    code: str
    message: str
    conflicts: list[ConflictDetail] = []


class ChangePage(_Message, tag="change_page"):
    """Revisions ``after``+1 .. ``last`` of the feed, whole, each change with its value as of its revision.

    ``head`` is the store's revision when the page was read (``more``: last < head);
    ``oldest`` the first revision whose history is kept.  ``compacted``: the history
    after ``after`` is gone (pruned), so the page is empty and the reader must
    rebuild from a snapshot.
    """

    epoch: str
    after: int
    last: int
    head: int
    oldest: int
    changes: list[Changed] = []
    more: bool = False
    compacted: bool = False


Reply = Item | Items | Versions | HubStatus | Committed | BatchCommitted | Rotated | Error | ChangePage

# --- published (hub -> subscribers, over XPUB/SUB) --------------------------


class Changed(_Message, tag="changed"):
    """One key changed.  A txn publishes ``count`` of these with one ``rev``."""

    epoch: str
    rev: int
    index: int
    count: int
    key: str
    op: Literal["set", "unset"]
    time: float
    value: Any = None
    source: str = ""
    user: str = ""
    secret: bool = False  # the value is the placeholder: subscribers learn only that it changed
    value_omitted: bool = False  # larger than MAX_INLINE_VALUE_BYTES: read its revision's page
    prev_rev: int = 0  # the key's revision before this change; 0: it did not exist
    backfill: bool = False  # history written after the fact: a consumer may skip or batch it
    origin: SiteOrigin | None = None  # this change was first made at another hub
    # A set's lifetime: the key goes this many seconds after this write unless written again (the
    # write's ttl, else its schema rule's, as the hub took it); None: no ttl, and always on an unset.
    ttl: float | None = None


class Heartbeat(_Message, tag="heartbeat"):
    epoch: str
    rev: int
    time: float
    interval: float = 1.0  # seconds until the next heartbeat


class Welcome(_Message, tag="welcome"):
    epoch: str
    rev: int
    topic: str
    interval: float = 1.0  # the hub's heartbeat interval


Published = Changed | Heartbeat | Welcome


def batch_txns(batch: Batch) -> list[Txn]:
    """A batch's writes as the txns they stand for, in order.

    Each carries the batch's source, user and backfill flag; with a batch
    request id, the i-th gets ``ID:i``, so a repeated batch is recognised write
    by write (and, the batch being all or nothing, as a whole).
    """
    return [
        Txn(
            v=batch.v,
            ops=write.ops,
            request_id=f"{batch.request_id}:{index}" if batch.request_id else "",
            source=batch.source,
            user=batch.user,
            backfill=batch.backfill,
        )
        for index, write in enumerate(batch.writes)
    ]


def write_ops(write: WriteRequest) -> list[Op]:
    """The operations of any write request, as a txn would list them."""
    if isinstance(write, Set):
        return [
            Op(op="set", key=write.key, value=write.value, expect=write.expect, secret=write.secret, ttl=write.ttl)
        ]
    if isinstance(write, Unset):
        return [Op(op="unset", key=write.key, expect=write.expect)]
    assert isinstance(write, Txn)
    return write.ops


# --- codecs -------------------------------------------------------------------


def request_decoder() -> msgspec.msgpack.Decoder[Request]:
    return msgspec.msgpack.Decoder(Request)


def reply_decoder() -> msgspec.msgpack.Decoder[Reply]:
    return msgspec.msgpack.Decoder(Reply)


def published_decoder() -> msgspec.msgpack.Decoder[Published]:
    return msgspec.msgpack.Decoder(Published)


def encoder() -> msgspec.msgpack.Encoder:
    return msgspec.msgpack.Encoder()
