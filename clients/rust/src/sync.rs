//! The replica and the rules of the sync algorithm (docs/protocol.md section 5
//! and "The change feed"), as a pure state machine: no sockets, no clock, so
//! every rule is unit-tested, and held with the Python client's replica to the
//! shared table `tests/vectors/sync.json`. [`crate::subscriber::Subscriber`]
//! drives it with real messages.
//!
//! A revision is applied only when it is the next one and whole. A gap, a
//! heartbeat ahead, a reconnect or a hub restart asks for the changes after the
//! replica's revision from the hub's history, page by page ([`Outcome::Fetch`]),
//! so every intermediate revision is applied in order. Only a new epoch, or
//! history that no longer reaches back (`compacted`), rebuilds the replica from
//! a snapshot ([`Outcome::Resync`]). A change published without its (large)
//! value is completed from its revision's page, never from the key's current
//! value: after every applied revision the replica is exactly the hub's state
//! at that revision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::{ChangePage, Changed, Item, Items, OpKind, Published, DEFAULT_PAGE_LIMIT};

/// How a change reached the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// From the change stream, as it committed.
    Live,
    /// From the hub's history, after a gap, a reconnect, a hub restart or a resume.
    Replay,
    /// Made up by a snapshot: the key's current state (intermediate values are lost).
    Snapshot,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Live => "live",
            Origin::Replay => "replay",
            Origin::Snapshot => "snapshot",
        }
    }
}

/// Why the replica asks for history or a snapshot: the machine-readable part of a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The first snapshot.
    Start,
    /// A consumer resuming after a revision it handled before.
    Resume,
    /// The hub is back (restarted, or reachable again).
    Reconnect,
    /// A change that does not continue the sequence.
    Gap,
    /// A heartbeat or welcome names a revision the replica does not have.
    Heartbeat,
    /// A change published without its large value.
    ValueOmitted,
    /// The hub's store is another one (restored or replaced).
    Epoch,
    /// History no longer reaches back to the replica's revision.
    Compacted,
    /// The hub refused to page its history (an older hub, or a store behind us).
    Refused,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Start => "start",
            Cause::Resume => "resume",
            Cause::Reconnect => "reconnect",
            Cause::Gap => "gap",
            Cause::Heartbeat => "heartbeat",
            Cause::ValueOmitted => "value_omitted",
            Cause::Epoch => "epoch",
            Cause::Compacted => "compacted",
            Cause::Refused => "refused",
        }
    }
}

/// A change as consumers see it: one key of one applied revision. The field
/// order is the JSON-lines format of `statehub-rs watch`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub rev: u64,
    pub key: String,
    pub op: OpKind,
    /// The new value; null for `unset`.
    pub value: Value,
    pub source: String,
    pub user: String,
    pub time: f64,
    /// Position within the revision's txn, 0..count-1.
    pub index: u32,
    pub count: u32,
    /// True for a change made up by a snapshot (`origin` is `snapshot`): the key
    /// moved while the subscriber was not looking, and this is its current state.
    pub resync: bool,
    /// The hub left the value out and it could not be read; `value` is null.
    /// (A subscriber reads large values from their revision's page: never set by it.)
    pub value_omitted: bool,
    /// Live from the stream, replayed from history, or made up by a snapshot.
    pub origin: Origin,
    /// The store's lineage: a cursor is `(epoch, rev)`.
    pub epoch: String,
    /// The key's revision before this change (0: it did not exist, or unknown for a snapshot's).
    pub prev_rev: u64,
    /// History written after the fact (a replayed export), not a live change:
    /// a consumer may skip it or handle it in bulk.
    pub backfill: bool,
    /// A set's lifetime in seconds (the write's ttl, else its schema rule's): the hub
    /// removes the key this long after the write unless it is written again. None: no
    /// ttl (always on an unset), or a hub too old to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<f64>,
}

impl Change {
    fn from_changed(changed: &Changed, origin: Origin) -> Change {
        Change {
            rev: changed.rev,
            key: changed.key.clone(),
            op: changed.op,
            value: changed.value.clone(),
            source: changed.source.clone(),
            user: changed.user.clone(),
            time: changed.time,
            index: changed.index,
            count: changed.count,
            resync: false,
            value_omitted: changed.value_omitted,
            origin,
            epoch: changed.epoch.clone(),
            prev_rev: changed.prev_rev,
            backfill: changed.backfill,
            ttl: changed.ttl,
        }
    }

    fn synthetic_set(item: &Item, epoch: &str) -> Change {
        Change {
            rev: item.rev,
            key: item.key.clone(),
            op: OpKind::Set,
            value: item.value.clone(),
            source: item.source.clone(),
            user: item.user.clone(),
            time: item.time,
            index: 0,
            count: 1,
            resync: true,
            value_omitted: false,
            origin: Origin::Snapshot,
            epoch: epoch.to_string(),
            prev_rev: 0,
            backfill: false,
            ttl: item.ttl,
        }
    }

    /// A key that vanished while we were not looking; we only know it is gone
    /// at revision `rev` (the snapshot's), not when or by whom.
    fn synthetic_unset(key: &str, rev: u64, time: f64, epoch: &str) -> Change {
        Change {
            rev,
            key: key.to_string(),
            op: OpKind::Unset,
            value: Value::Null,
            source: String::new(),
            user: String::new(),
            time,
            index: 0,
            count: 1,
            resync: true,
            value_omitted: false,
            origin: Origin::Snapshot,
            epoch: epoch.to_string(),
            prev_rev: 0,
            backfill: false,
            ttl: None,
        }
    }
}

/// The replica was (re)built from a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Synced {
    pub epoch: String,
    pub rev: u64,
    /// The first snapshot this replica loaded.
    pub first: bool,
    /// Revisions between the replica (or the revision resumed from) and this
    /// snapshot were never seen: a counted resync.
    pub resync: bool,
    pub cause: Cause,
    pub reason: String,
    /// How the new replica differs from the old one, in revision order (every
    /// key, on a first load).
    pub changes: Vec<Change>,
}

/// What the replica answers to what the hub said.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A whole revision was applied; these are its changes under the prefix (never empty).
    Update {
        rev: u64,
        origin: Origin,
        changes: Vec<Change>,
    },
    /// Ask the hub for the changes after `after` (a page of at most `limit`), then call `on_page`.
    Fetch {
        after: u64,
        limit: u32,
        cause: Cause,
        reason: String,
    },
    /// Ask the hub for a snapshot, then call `load`: neither the stream nor history can continue.
    Resync { cause: Cause, reason: String },
    /// A catch-up from history reached the hub's head; `replayed` revisions came as updates.
    CaughtUp {
        rev: u64,
        replayed: u64,
        cause: Cause,
        reason: String,
    },
}

/// A request for history in flight, and what it has replayed so far.
#[derive(Debug, Clone)]
struct CatchUp {
    cause: Cause,
    reason: String,
    replayed: u64,
}

/// The replica of every key under a prefix, at revision `rev` of lineage `epoch`.
#[derive(Debug, Clone, Default)]
pub struct SyncState {
    prefix: String,
    epoch: Option<String>,
    rev: u64,
    items: BTreeMap<String, Item>,
    /// The `changed` messages of the revision being assembled (rev + 1), in order.
    assembling: Vec<Changed>,
    catching_up: Option<CatchUp>,
}

impl SyncState {
    /// An empty replica for keys starting with `prefix`; it needs a snapshot first.
    pub fn new(prefix: impl Into<String>) -> SyncState {
        SyncState {
            prefix: prefix.into(),
            ..SyncState::default()
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lineage of the replica; None before the first snapshot.
    pub fn epoch(&self) -> Option<&str> {
        self.epoch.as_deref()
    }

    /// The last revision applied.
    pub fn rev(&self) -> u64 {
        self.rev
    }

    pub fn items(&self) -> &BTreeMap<String, Item> {
        &self.items
    }

    pub fn get(&self, key: &str) -> Option<&Item> {
        self.items.get(key)
    }

    /// True while a page of history is awaited.
    pub fn is_catching_up(&self) -> bool {
        self.catching_up.is_some()
    }

    /// Replace the replica with a snapshot, taken for `cause`; `now` times the
    /// unsets a resync reports. The result says how the replica changed (nothing,
    /// on a first load: [`SyncState::current`] has it all).
    pub fn load(&mut self, snapshot: Items, cause: Cause, reason: &str, now: f64) -> Synced {
        let first = self.epoch.is_none();
        let fresh: BTreeMap<String, Item> = snapshot
            .items
            .into_iter()
            .filter(|item| item.key.starts_with(&self.prefix))
            .map(|item| (item.key.clone(), item))
            .collect();
        let mut diff: Vec<Change> = fresh
            .values()
            .filter(|item| {
                !first
                    && self
                        .items
                        .get(&item.key)
                        .is_none_or(|old| old.rev != item.rev || old.value != item.value)
            })
            .map(|item| Change::synthetic_set(item, &snapshot.epoch))
            .collect();
        diff.extend(
            self.items
                .keys()
                .filter(|key| !fresh.contains_key(*key))
                .map(|key| Change::synthetic_unset(key, snapshot.rev, now, &snapshot.epoch)),
        );
        diff.sort_by(|a, b| (a.rev, &a.key).cmp(&(b.rev, &b.key)));
        self.items = fresh;
        self.epoch = Some(snapshot.epoch.clone());
        self.rev = snapshot.rev;
        self.assembling.clear();
        self.catching_up = None;
        Synced {
            epoch: snapshot.epoch,
            rev: snapshot.rev,
            first,
            resync: !matches!(cause, Cause::Start | Cause::Resume),
            cause,
            reason: reason.to_string(),
            changes: diff,
        }
    }

    /// Every key of the replica as a made-up change (origin `snapshot`), in
    /// revision order: the state to report with `initial`, or after a resync
    /// that has no earlier replica to compare with.
    pub fn current(&self) -> Vec<Change> {
        let epoch = self.epoch.as_deref().unwrap_or_default();
        let mut changes: Vec<Change> = self
            .items
            .values()
            .map(|item| Change::synthetic_set(item, epoch))
            .collect();
        changes.sort_by(|a, b| (a.rev, &a.key).cmp(&(b.rev, &b.key)));
        changes
    }

    /// Start replaying history after the replica's revision (the hub is back, or
    /// a consumer resumes): a `Fetch`, or a `Resync` before any snapshot.
    pub fn catch_up(&mut self, cause: Cause, reason: &str) -> Outcome {
        if self.epoch.is_none() {
            return Outcome::Resync {
                cause: Cause::Start,
                reason: "start".into(),
            };
        }
        self.fetch(cause, reason.to_string())
    }

    /// A message from the change stream.
    pub fn on_message(&mut self, message: &Published) -> Vec<Outcome> {
        let Some(epoch) = self.epoch.clone() else {
            return vec![Outcome::Resync {
                cause: Cause::Start,
                reason: "start".into(),
            }];
        };
        if self.catching_up.is_some() {
            return Vec::new(); // the page in flight decides
        }
        let (kind, message_epoch, rev) = match message {
            Published::Changed(changed) => ("changed", &changed.epoch, changed.rev),
            Published::Heartbeat(beat) => ("heartbeat", &beat.epoch, beat.rev),
            Published::Welcome(welcome) => ("welcome", &welcome.epoch, welcome.rev),
            Published::Unknown => return Vec::new(),
        };
        if *message_epoch != epoch {
            let reason = format!("{kind} from another epoch {message_epoch} (the replica's is {epoch})");
            return vec![self.resync(Cause::Epoch, reason)];
        }
        match message {
            Published::Changed(changed) => self.on_changed(changed),
            // The hub publishes all messages of a revision back to back and only then
            // a heartbeat or welcome naming it: one ahead of us, even mid-txn, means
            // messages were dropped.
            _ if rev > self.rev => {
                let reason = format!("{kind} says revision {rev}, the replica is at {}", self.rev);
                vec![self.fetch(Cause::Heartbeat, reason)]
            }
            _ => Vec::new(),
        }
    }

    /// A page of the change feed: the answer to the last `Fetch`.
    pub fn on_page(&mut self, page: &ChangePage) -> Vec<Outcome> {
        let Some(catch_up) = self.catching_up.clone() else {
            return Vec::new(); // nothing asked for it
        };
        if self.epoch.as_deref() != Some(page.epoch.as_str()) {
            let reason = format!("the hub's history is of another epoch {}", page.epoch);
            return vec![self.resync(Cause::Epoch, reason)];
        }
        if page.compacted {
            let reason = format!(
                "history starts at revision {} and the replica is at {}: the revisions between are lost",
                page.oldest, self.rev
            );
            return vec![self.resync(Cause::Compacted, reason)];
        }
        let origin = if catch_up.cause == Cause::ValueOmitted {
            Origin::Live
        } else {
            Origin::Replay
        };
        let mut outcomes = Vec::new();
        let mut replayed = catch_up.replayed;
        for revision in page.changes.chunk_by(|a, b| a.rev == b.rev) {
            if revision[0].rev <= self.rev {
                continue;
            }
            if let Some(update) = self.apply(revision, origin) {
                replayed += u64::from(origin == Origin::Replay);
                outcomes.push(update);
            }
        }
        self.rev = self.rev.max(page.last);
        if catch_up.cause == Cause::ValueOmitted {
            self.catching_up = None;
        } else if page.more {
            self.catching_up = Some(CatchUp {
                replayed,
                ..catch_up.clone()
            });
            outcomes.push(Outcome::Fetch {
                after: self.rev,
                limit: DEFAULT_PAGE_LIMIT,
                cause: catch_up.cause,
                reason: catch_up.reason,
            });
        } else {
            self.catching_up = None;
            outcomes.push(Outcome::CaughtUp {
                rev: self.rev,
                replayed,
                cause: catch_up.cause,
                reason: catch_up.reason,
            });
        }
        outcomes
    }

    fn on_changed(&mut self, changed: &Changed) -> Vec<Outcome> {
        if changed.rev <= self.rev {
            return Vec::new(); // already applied (from a snapshot, a page or before)
        }
        if !self.continues(changed) {
            let reason = self.gap(changed.rev, changed.index);
            return vec![self.fetch(Cause::Gap, reason)];
        }
        self.assembling.push(changed.clone());
        if changed.index + 1 < changed.count {
            return Vec::new(); // hold it: no subscriber ever sees half a txn
        }
        let revision = std::mem::take(&mut self.assembling);
        let omitted = revision
            .iter()
            .any(|c| c.value_omitted && c.key.starts_with(&self.prefix));
        if omitted {
            // Its large value as of this revision is in the revision's page: one revision, whole.
            let reason = format!("revision {} has a large value", changed.rev);
            self.catching_up = Some(CatchUp {
                cause: Cause::ValueOmitted,
                reason: reason.clone(),
                replayed: 0,
            });
            return vec![Outcome::Fetch {
                after: self.rev,
                limit: 1,
                cause: Cause::ValueOmitted,
                reason,
            }];
        }
        self.apply(&revision, Origin::Live).into_iter().collect()
    }

    /// Whether `changed` is exactly the next message of the sequence.
    fn continues(&self, changed: &Changed) -> bool {
        if changed.index >= changed.count {
            return false;
        }
        match self.assembling.last() {
            None => changed.rev == self.rev + 1 && changed.index == 0,
            Some(last) => {
                changed.rev == last.rev && changed.index == last.index + 1 && changed.count == last.count
            }
        }
    }

    fn gap(&self, rev: u64, index: u32) -> String {
        match self.assembling.last() {
            None => format!(
                "gap: expected revision {}, got revision {rev} index {index}",
                self.rev + 1
            ),
            Some(last) => format!(
                "gap: expected revision {} index {}, got revision {rev} index {index}",
                last.rev,
                last.index + 1
            ),
        }
    }

    fn fetch(&mut self, cause: Cause, reason: String) -> Outcome {
        self.assembling.clear();
        self.catching_up = Some(CatchUp {
            cause,
            reason: reason.clone(),
            replayed: 0,
        });
        Outcome::Fetch {
            after: self.rev,
            limit: DEFAULT_PAGE_LIMIT,
            cause,
            reason,
        }
    }

    fn resync(&mut self, cause: Cause, reason: String) -> Outcome {
        self.assembling.clear();
        self.catching_up = None;
        Outcome::Resync { cause, reason }
    }

    /// Apply one whole revision; its changes under the prefix, if any.
    fn apply(&mut self, revision: &[Changed], origin: Origin) -> Option<Outcome> {
        let mut changes = Vec::new();
        for changed in revision {
            self.rev = changed.rev;
            if !changed.key.starts_with(&self.prefix) {
                continue;
            }
            self.apply_one(changed);
            changes.push(Change::from_changed(changed, origin));
        }
        if changes.is_empty() {
            return None;
        }
        Some(Outcome::Update {
            rev: self.rev,
            origin,
            changes,
        })
    }

    fn apply_one(&mut self, changed: &Changed) {
        match changed.op {
            // An omitted value is never guessed: the key waits for its revision's page.
            OpKind::Unset => {
                self.items.remove(&changed.key);
            }
            OpKind::Set if changed.value_omitted => {
                self.items.remove(&changed.key);
            }
            OpKind::Set => {
                let created_rev = self
                    .items
                    .get(&changed.key)
                    .map_or(changed.rev, |old| old.created_rev);
                let item = Item {
                    key: changed.key.clone(),
                    value: changed.value.clone(),
                    rev: changed.rev,
                    created_rev,
                    time: changed.time,
                    source: changed.source.clone(),
                    user: changed.user.clone(),
                    secret: changed.secret,
                    origin: changed.origin.clone(),
                    ttl: changed.ttl,
                };
                self.items.insert(changed.key.clone(), item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The rules case by case; tests/sync_vectors.rs holds the same rules to the
    //! table shared with the Python client.
    use super::*;
    use crate::protocol::Heartbeat;
    use serde_json::json;

    const EPOCH: &str = "e1";

    fn item(key: &str, value: Value, rev: u64) -> Item {
        Item {
            key: key.into(),
            value,
            rev,
            created_rev: rev,
            time: 1.0,
            source: "cli".into(),
            user: "ana".into(),
            secret: false,
            origin: None,
            ttl: None,
        }
    }

    fn snapshot(rev: u64, items: Vec<Item>) -> Items {
        Items {
            epoch: EPOCH.into(),
            rev,
            items,
        }
    }

    fn changed(rev: u64, index: u32, count: u32, key: &str, value: Value) -> Changed {
        Changed {
            epoch: EPOCH.into(),
            rev,
            index,
            count,
            key: key.into(),
            op: if value.is_null() {
                OpKind::Unset
            } else {
                OpKind::Set
            },
            time: 2.0,
            value,
            source: "gui".into(),
            user: "bob".into(),
            secret: false,
            value_omitted: false,
            prev_rev: 0,
            backfill: false,
            origin: None,
            ttl: None,
        }
    }

    fn published(rev: u64, index: u32, count: u32, key: &str, value: Value) -> Published {
        Published::Changed(changed(rev, index, count, key, value))
    }

    fn heartbeat(rev: u64) -> Published {
        Published::Heartbeat(Heartbeat {
            epoch: EPOCH.into(),
            rev,
            time: 3.0,
            interval: 1.0,
        })
    }

    fn synced(rev: u64) -> SyncState {
        let mut state = SyncState::new("");
        state.load(
            snapshot(rev, vec![item("a.x", json!(1), 2)]),
            Cause::Start,
            "start",
            0.0,
        );
        state
    }

    fn applied(outcomes: Vec<Outcome>) -> Vec<(u64, String, Origin)> {
        outcomes
            .into_iter()
            .flat_map(|outcome| match outcome {
                Outcome::Update { changes, .. } => changes,
                other => panic!("expected updates only, got {other:?}"),
            })
            .map(|c| (c.rev, c.key, c.origin))
            .collect()
    }

    #[test]
    fn keeps_created_rev_and_removes_unset_keys() {
        let mut state = synced(5);
        state.on_message(&published(6, 0, 1, "a.x", json!(7)));
        assert_eq!(state.get("a.x").unwrap().created_rev, 2);
        let keys = applied(state.on_message(&published(7, 0, 1, "a.x", Value::Null)));
        assert_eq!(keys, vec![(7, "a.x".to_string(), Origin::Live)]);
        assert!(state.get("a.x").is_none());
    }

    #[test]
    fn a_sets_ttl_reaches_the_change_the_replica_and_the_current_state() {
        let mut state = synced(5);
        let mut with_ttl = changed(6, 0, 1, "a.beat", json!(1));
        with_ttl.ttl = Some(30.0);
        let changes: Vec<Change> = state
            .on_message(&Published::Changed(with_ttl))
            .into_iter()
            .flat_map(|outcome| match outcome {
                Outcome::Update { changes, .. } => changes,
                other => panic!("expected an update, got {other:?}"),
            })
            .collect();
        assert_eq!(changes[0].ttl, Some(30.0));
        assert_eq!(state.get("a.beat").unwrap().ttl, Some(30.0));
        let current = state.current();
        let made_up = current.iter().find(|c| c.key == "a.beat").unwrap();
        assert_eq!(made_up.ttl, Some(30.0));
        assert_eq!(state.current().iter().find(|c| c.key == "a.x").unwrap().ttl, None);
    }

    #[test]
    fn half_a_txn_is_never_visible() {
        let mut state = synced(5);
        assert!(state.on_message(&published(6, 0, 2, "a.p", json!(1))).is_empty());
        assert!(state.get("a.p").is_none());
        assert_eq!(state.rev(), 5);
        assert_eq!(
            applied(state.on_message(&published(6, 1, 2, "a.q", json!(2)))).len(),
            2
        );
    }

    #[test]
    fn a_gap_asks_for_history_and_ignores_the_stream_until_the_page() {
        let mut state = synced(5);
        let asked = state.on_message(&published(7, 0, 1, "a.x", json!(1)));
        assert!(matches!(
            asked[..],
            [Outcome::Fetch {
                after: 5,
                cause: Cause::Gap,
                ..
            }]
        ));
        assert!(state.is_catching_up());
        assert!(state.on_message(&heartbeat(9)).is_empty());
        let page = ChangePage {
            epoch: EPOCH.into(),
            after: 5,
            last: 7,
            head: 7,
            oldest: 1,
            changes: vec![
                changed(6, 0, 1, "a.y", json!(6)),
                changed(7, 0, 1, "a.x", json!(1)),
            ],
            more: false,
            compacted: false,
        };
        let outcomes = state.on_page(&page);
        assert!(matches!(
            outcomes.last(),
            Some(Outcome::CaughtUp {
                rev: 7,
                replayed: 2,
                cause: Cause::Gap,
                ..
            })
        ));
        assert_eq!(
            applied(outcomes[..2].to_vec()),
            vec![
                (6, "a.y".into(), Origin::Replay),
                (7, "a.x".into(), Origin::Replay)
            ]
        );
        assert!(!state.is_catching_up());
    }

    #[test]
    fn a_resync_reports_what_moved_in_revision_order() {
        let mut state = SyncState::new("");
        let keys = vec![
            item("keep", json!(1), 1),
            item("move", json!(1), 2),
            item("gone", json!(1), 3),
        ];
        let first = state.load(snapshot(5, keys), Cause::Start, "start", 0.0);
        assert!(first.changes.is_empty() && first.first && !first.resync);
        assert_eq!(state.current().len(), 3, "the state is every key");
        let keys = vec![
            item("keep", json!(1), 1),
            item("move", json!(2), 8),
            item("new", json!(3), 7),
        ];
        let diff = state.load(snapshot(9, keys), Cause::Compacted, "history is gone", 42.0);
        assert!(!diff.first && diff.resync);
        let summary: Vec<(u64, &str, OpKind, Origin)> = diff
            .changes
            .iter()
            .map(|c| (c.rev, c.key.as_str(), c.op, c.origin))
            .collect();
        assert_eq!(
            summary,
            vec![
                (7, "new", OpKind::Set, Origin::Snapshot),
                (8, "move", OpKind::Set, Origin::Snapshot),
                (9, "gone", OpKind::Unset, Origin::Snapshot),
            ]
        );
        assert_eq!(diff.changes[2].time, 42.0);
        assert_eq!(state.rev(), 9);
    }

    #[test]
    fn a_snapshot_drops_a_half_assembled_txn() {
        let mut state = synced(5);
        state.on_message(&published(6, 0, 2, "a.p", json!(1)));
        state.load(
            snapshot(6, vec![item("a.p", json!(1), 6)]),
            Cause::Gap,
            "gap",
            0.0,
        );
        // The tail of revision 6 is now old news; revision 7 follows cleanly.
        assert!(state.on_message(&published(6, 1, 2, "a.q", json!(2))).is_empty());
        assert_eq!(
            applied(state.on_message(&published(7, 0, 1, "a.x", json!(5)))).len(),
            1
        );
    }

    #[test]
    fn unknown_messages_are_ignored() {
        let mut state = synced(5);
        assert!(state.on_message(&Published::Unknown).is_empty());
    }
}
