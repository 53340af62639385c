//! The statehub wire protocol (docs/protocol.md), as serde types.
//!
//! Each type mirrors a msgspec Struct of `hub/protocol.py` field for field and in
//! the same order, because the golden vectors pin the exact bytes of every request:
//! map keys in declaration order, `type` first, fields at their default omitted.
//! Unknown fields are ignored on decode (serde's default), which is what lets a
//! newer hub add optional fields without breaking this crate.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this crate speaks (`v` in every request).
pub const PROTOCOL_VERSION: u32 = 1;

/// The topic of heartbeats on the change stream.
pub const HEARTBEAT_TOPIC: &[u8] = b"@hb";

/// The heartbeat interval a hub announces when it says nothing (protocol default).
pub const DEFAULT_HEARTBEAT: f64 = 1.0;

/// The longest lifetime a write's `ttl` may give a key, in seconds (366 days): a key that
/// must live longer needs none.
pub const MAX_TTL_SECONDS: f64 = 31_622_400.0;

/// Changes per page of the feed when a `changes` request says nothing (at most 10,000).
pub const DEFAULT_PAGE_LIMIT: u32 = 1000;

/// About how many bytes a page of the feed holds when a `changes` request says nothing.
pub const DEFAULT_PAGE_BYTES: u64 = 1024 * 1024;

// --- helpers for `skip_serializing_if` and `default`: msgspec's omit_defaults ---

fn is_empty(text: &str) -> bool {
    text.is_empty()
}

fn is_null(value: &Value) -> bool {
    value.is_null()
}

fn is_false(flag: &bool) -> bool {
    !*flag
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f64(x: &f64) -> bool {
    *x == 0.0
}

fn default_limit() -> u32 {
    100
}

fn is_default_limit(limit: &u32) -> bool {
    *limit == 100
}

fn default_page_limit() -> u32 {
    DEFAULT_PAGE_LIMIT
}

fn is_default_page_limit(limit: &u32) -> bool {
    *limit == DEFAULT_PAGE_LIMIT
}

fn default_page_bytes() -> u64 {
    DEFAULT_PAGE_BYTES
}

fn is_default_page_bytes(bytes: &u64) -> bool {
    *bytes == DEFAULT_PAGE_BYTES
}

fn default_interval() -> f64 {
    DEFAULT_HEARTBEAT
}

fn is_default_interval(x: &f64) -> bool {
    *x == DEFAULT_HEARTBEAT
}

/// What one change or history row did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Set,
    Unset,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Set => "set",
            OpKind::Unset => "unset",
        }
    }
}

// --- requests (client -> hub) -------------------------------------------------

/// A request to the hub: one MessagePack map, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Get {
        v: u32,
        key: String,
        /// A secret's plaintext instead of the placeholder.
        #[serde(default, skip_serializing_if = "is_false")]
        reveal: bool,
        /// The item as it was right after this revision (from history).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_rev: Option<u64>,
    },
    List {
        v: u32,
        #[serde(default, skip_serializing_if = "is_empty")]
        prefix: String,
    },
    Snapshot {
        v: u32,
        #[serde(default, skip_serializing_if = "is_empty")]
        prefix: String,
        /// Rebuild the state as it was right after this revision (from history).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_rev: Option<u64>,
        /// Secrets as Fernet tokens (for exports) instead of the placeholder.
        #[serde(default, skip_serializing_if = "is_false")]
        sealed: bool,
    },
    History {
        v: u32,
        key: String,
        #[serde(default = "default_limit", skip_serializing_if = "is_default_limit")]
        limit: u32,
    },
    Status {
        v: u32,
    },
    Set {
        v: u32,
        key: String,
        value: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<u64>,
        /// "" (plain; a secret stays one), "value" (make it a secret) or "sealed" (a token).
        #[serde(default, skip_serializing_if = "is_empty")]
        secret: String,
        #[serde(flatten)]
        meta: WriteMeta,
        /// Seconds: the hub removes the key once it has not been written for this long
        /// (docs/schema.md, Liveness). After `meta`, as the hub's field order puts it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<f64>,
    },
    Unset {
        v: u32,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<u64>,
        #[serde(flatten)]
        meta: WriteMeta,
    },
    Txn {
        v: u32,
        ops: Vec<Op>,
        #[serde(flatten)]
        meta: WriteMeta,
    },
    /// Several writes, each under its own revision, in order: all of them or none.
    Batch {
        v: u32,
        writes: Vec<BatchWrite>,
        #[serde(flatten)]
        meta: WriteMeta,
    },
    /// Re-encrypt every secret under a new key.
    RotateKey {
        v: u32,
    },
    /// One page of the change feed: the committed changes after revision `after`.
    Changes {
        v: u32,
        after: u64,
        /// Only changes of keys under it (the revision sequence stays global).
        #[serde(default, skip_serializing_if = "is_empty")]
        prefix: String,
        /// Changes per page, 1..10000.
        #[serde(default = "default_page_limit", skip_serializing_if = "is_default_page_limit")]
        limit: u32,
        /// About this many bytes per page (a page always holds one whole revision).
        #[serde(default = "default_page_bytes", skip_serializing_if = "is_default_page_bytes")]
        max_bytes: u64,
    },
}

/// The fields every write carries after its own: idempotency id and provenance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteMeta {
    #[serde(default, skip_serializing_if = "is_empty")]
    pub request_id: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub user: String,
    /// History written after the fact (a replayed export), not a live change.
    #[serde(default, skip_serializing_if = "is_false")]
    pub backfill: bool,
}

/// One write of a batch: the ops of one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchWrite {
    pub ops: Vec<Op>,
}

/// One operation of a txn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub op: OpKind,
    pub key: String,
    /// The value to set; omitted on the wire when null (the hub's default).
    #[serde(default, skip_serializing_if = "is_null")]
    pub value: Value,
    /// Compare-and-set: `Some(0)` = must not exist, `Some(n)` = must be at rev n.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<u64>,
    /// How the op treats secrets: see `Request::Set`.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub secret: String,
    /// A set's lifetime in seconds: see `Request::Set`. The hub refuses it on an unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<f64>,
}

impl Op {
    pub fn set(key: impl Into<String>, value: Value) -> Op {
        Op {
            op: OpKind::Set,
            key: key.into(),
            value,
            expect: None,
            secret: String::new(),
            ttl: None,
        }
    }

    pub fn unset(key: impl Into<String>) -> Op {
        Op {
            op: OpKind::Unset,
            key: key.into(),
            value: Value::Null,
            expect: None,
            secret: String::new(),
            ttl: None,
        }
    }

    /// The same op with a compare-and-set condition.
    pub fn expect(mut self, rev: u64) -> Op {
        self.expect = Some(rev);
        self
    }

    /// The same set with a lifetime: the hub removes the key `seconds` after its last write.
    pub fn ttl(mut self, seconds: f64) -> Op {
        self.ttl = Some(seconds);
        self
    }
}

// --- replies (hub -> client) ----------------------------------------------------

/// A key's current value and provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub key: String,
    pub value: Value,
    /// The revision of the key's last change.
    pub rev: u64,
    /// The revision that created the key.
    pub created_rev: u64,
    /// When the key last changed, seconds since the Unix epoch.
    pub time: f64,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub user: String,
    /// The value is a secret's placeholder (or its token, or revealed).
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    /// Its last change was first made at another hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Box<SiteOrigin>>,
    /// Seconds the key lives after its last write (that write's ttl, else its schema
    /// rule's); None: it has no ttl, or the hub (or the mirror) does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<f64>,
}

/// Where a change was first made, when a hub stores another hub's change (docs/sites.md):
/// the site hub's own revision, time and writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteOrigin {
    pub site: String,
    pub rev: u64,
    pub time: f64,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub user: String,
}

/// One history row of a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub rev: u64,
    pub op: OpKind,
    #[serde(default, skip_serializing_if = "is_null")]
    pub value: Value,
    /// The key's revision before this change; 0: it did not exist.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub prev_rev: u64,
    /// The value this change replaced (null when `prev_rev` is 0).
    #[serde(default, skip_serializing_if = "is_null")]
    pub prev_value: Value,
    pub time: f64,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub user: String,
    /// value and prev_value of a secret show as the placeholder.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    /// Written as history after the fact (a replayed export).
    #[serde(default, skip_serializing_if = "is_false")]
    pub backfill: bool,
    /// This change was first made at another hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Box<SiteOrigin>>,
}

/// Why one compare-and-set condition failed: what the key holds now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConflictDetail {
    pub key: String,
    pub expected: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub rev: u64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub exists: bool,
    #[serde(default, skip_serializing_if = "is_null")]
    pub value: Value,
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub time: f64,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub user: String,
}

/// A reply from the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Item(Item),
    Items(Items),
    Versions {
        key: String,
        versions: Vec<Version>,
    },
    HubStatus(HubStatus),
    Committed(Committed),
    BatchCommitted(BatchCommitted),
    /// Secrets re-encrypted by a key rotation.
    Rotated {
        secrets: u64,
        versions: u64,
    },
    Error(ErrorReply),
    ChangePage(ChangePage),
    /// A reply type newer than this crate: treated as a protocol error by the client.
    #[serde(other)]
    Unknown,
}

/// Every key under a prefix, read at one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Items {
    pub epoch: String,
    pub rev: u64,
    /// On the wire each entry is itself a tagged `item` map.
    #[serde(serialize_with = "tagged_items")]
    pub items: Vec<Item>,
}

/// Serialize items as the hub does: each a map with `type: "item"` first.
fn tagged_items<S: serde::Serializer>(items: &[Item], serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Tagged<'a> {
        Item(&'a Item),
    }
    serializer.collect_seq(items.iter().map(Tagged::Item))
}

/// Revisions `after`+1 ..= `last` of the change feed, whole and in order, each
/// change with its value as of its revision (large values included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePage {
    pub epoch: String,
    pub after: u64,
    pub last: u64,
    /// The store's revision when the page was read; `more` is `last < head`.
    pub head: u64,
    /// The first revision whose history is still kept.
    pub oldest: u64,
    /// On the wire each entry is itself a tagged `changed` map.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "tagged_changes"
    )]
    pub changes: Vec<Changed>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub more: bool,
    /// History after `after` is gone: rebuild from a snapshot instead.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compacted: bool,
}

/// Serialize changes as the hub does: each a map with `type: "changed"` first.
fn tagged_changes<S: serde::Serializer>(changes: &[Changed], serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Tagged<'a> {
        Changed(&'a Changed),
    }
    serializer.collect_seq(changes.iter().map(Tagged::Changed))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubStatus {
    pub version: String,
    pub protocol: u32,
    pub epoch: String,
    pub rev: u64,
    pub uptime: f64,
    pub keys: u64,
    pub pid: u64,
    pub data_dir: String,
    pub store: String,
    pub mirror: String,
    pub endpoints: serde_json::Map<String, Value>,
    /// Write requests committed since the hub started.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub writes: u64,
    /// SQLite transactions since start (fewer than writes: group commit).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub commits: u64,
}

/// A write was made durable at `rev` (or had been, when `duplicate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub epoch: String,
    pub rev: u64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub duplicate: bool,
    /// Accepted, but the schema does not know these keys (its policy `warn`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A batch was made durable: `revs[i]` is the revision of its i-th write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCommitted {
    pub epoch: String,
    pub revs: Vec<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<ConflictDetail>,
}

// --- published (hub -> subscribers) -------------------------------------------

/// A message on the change stream (the second frame; the first is the topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Published {
    Changed(Changed),
    Heartbeat(Heartbeat),
    Welcome(Welcome),
    /// A message type newer than this crate: ignorable by contract.
    #[serde(other)]
    Unknown,
}

/// One key changed. A txn publishes `count` of these with one `rev`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Changed {
    pub epoch: String,
    pub rev: u64,
    pub index: u32,
    pub count: u32,
    pub key: String,
    pub op: OpKind,
    pub time: f64,
    #[serde(default, skip_serializing_if = "is_null")]
    pub value: Value,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "is_empty")]
    pub user: String,
    /// The value is a secret's placeholder: subscribers learn only that it changed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    /// The value was larger than the inline limit and left out: read its revision's page.
    #[serde(default, skip_serializing_if = "is_false")]
    pub value_omitted: bool,
    /// The key's revision before this change; 0: it did not exist.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub prev_rev: u64,
    /// History written after the fact (a replayed export): a consumer may skip or batch it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub backfill: bool,
    /// This change was first made at another hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Box<SiteOrigin>>,
    /// A set's lifetime: the key goes this many seconds after this write unless written
    /// again (the write's ttl, else its schema rule's). None: no ttl, and always on an unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub epoch: String,
    pub rev: u64,
    pub time: f64,
    /// Seconds until the next heartbeat.
    #[serde(default = "default_interval", skip_serializing_if = "is_default_interval")]
    pub interval: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub epoch: String,
    pub rev: u64,
    pub topic: String,
    /// The hub's heartbeat interval.
    #[serde(default = "default_interval", skip_serializing_if = "is_default_interval")]
    pub interval: f64,
}

// --- codec --------------------------------------------------------------------------

/// Encode a message as the hub expects it: a MessagePack map with named fields.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(message)
}

/// Decode one MessagePack map.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}
