//! The replica and the live rules of the sync algorithm (docs/protocol.md
//! section 5), as a pure state machine: no sockets, no clock, so every rule is
//! unit-tested. [`crate::subscriber::Subscriber`] drives it with real messages.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::protocol::{Changed, Item, Items, OpKind, Published};

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
    /// True for a change made up by a resync: the key moved while the subscriber
    /// was not looking, and this is its current state (intermediate values are lost).
    pub resync: bool,
    /// The hub left the (large) value out of the stream and it could not be
    /// fetched yet; `value` is null.
    pub value_omitted: bool,
    /// History written after the fact (a replayed export), not a live change:
    /// a consumer may skip it or handle it in bulk.
    pub backfill: bool,
}

impl Change {
    fn from_changed(changed: &Changed) -> Change {
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
            backfill: changed.backfill,
        }
    }

    fn synthetic_set(item: &Item) -> Change {
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
            backfill: false,
        }
    }

    /// A key that vanished while we were not looking; we only know it is gone
    /// at revision `rev` (the snapshot's), not when or by whom.
    fn synthetic_unset(key: &str, rev: u64, time: f64) -> Change {
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
            backfill: false,
        }
    }
}

/// What one published message did to the replica.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to report: ignored, or part of a txn still being assembled.
    Nothing,
    /// A whole revision was applied; these are its changes under the prefix
    /// (possibly none, when it touched only other keys).
    Applied(Vec<Change>),
    /// The stream can no longer be trusted: take a fresh snapshot.
    Resync(String),
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

    /// Replace the replica with a snapshot (step 3) and return how it differs
    /// from the old one, as synthetic changes in revision order, so a consumer
    /// sees the current value of every key that moved.
    pub fn load_snapshot(&mut self, snapshot: Items, now: f64) -> Vec<Change> {
        let fresh: BTreeMap<String, Item> = snapshot
            .items
            .into_iter()
            .filter(|item| item.key.starts_with(&self.prefix))
            .map(|item| (item.key.clone(), item))
            .collect();
        let mut diff: Vec<Change> = fresh
            .values()
            .filter(|item| {
                self.items
                    .get(&item.key)
                    .is_none_or(|old| old.rev != item.rev || old.value != item.value)
            })
            .map(Change::synthetic_set)
            .collect();
        diff.extend(
            self.items
                .keys()
                .filter(|key| !fresh.contains_key(*key))
                .map(|key| Change::synthetic_unset(key, snapshot.rev, now)),
        );
        diff.sort_by(|a, b| (a.rev, &a.key).cmp(&(b.rev, &b.key)));
        self.items = fresh;
        self.epoch = Some(snapshot.epoch);
        self.rev = snapshot.rev;
        self.assembling.clear();
        diff
    }

    /// Apply one published message by the live rules (steps 4 and 5).
    pub fn on_message(&mut self, message: &Published) -> Step {
        let Some(epoch) = self.epoch.as_deref() else {
            return Step::Resync("no snapshot yet".into());
        };
        match message {
            Published::Changed(changed) if changed.epoch != epoch => {
                Step::Resync(format!("the store's epoch changed to {}", changed.epoch))
            }
            Published::Changed(changed) => self.on_changed(changed),
            Published::Heartbeat(beat) => self.on_marker("heartbeat", &beat.epoch, beat.rev),
            Published::Welcome(welcome) => self.on_marker("welcome", &welcome.epoch, welcome.rev),
            Published::Unknown => Step::Nothing,
        }
    }

    fn on_changed(&mut self, changed: &Changed) -> Step {
        if changed.rev <= self.rev {
            return Step::Nothing; // already applied (from the snapshot or before)
        }
        if !self.continues(changed) {
            return Step::Resync(self.gap(changed.rev, changed.index));
        }
        self.assembling.push(changed.clone());
        if changed.index + 1 < changed.count {
            return Step::Nothing; // hold it: no subscriber ever sees half a txn
        }
        Step::Applied(self.apply_assembled())
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

    /// Heartbeats and welcomes carry the hub's last published revision.
    fn on_marker(&mut self, kind: &str, epoch: &str, rev: u64) -> Step {
        if self.epoch.as_deref() != Some(epoch) {
            return Step::Resync(format!("{kind} from another epoch {epoch}"));
        }
        match self.assembling.first() {
            None if rev > self.rev => {
                Step::Resync(format!("gap: {kind} says revision {rev}, we are at {}", self.rev))
            }
            // The hub publishes all messages of a revision back to back and only
            // then a heartbeat or welcome naming it; one arriving mid-txn means
            // the rest of the txn was dropped. (The protocol leaves this case
            // open; without this rule a lost txn tail would stall us forever.)
            Some(first) if rev >= first.rev => Step::Resync(format!(
                "gap: {kind} at revision {rev} while revision {} is incomplete",
                first.rev
            )),
            _ => Step::Nothing,
        }
    }

    fn apply_assembled(&mut self) -> Vec<Change> {
        let messages = std::mem::take(&mut self.assembling);
        let mut changes = Vec::new();
        for changed in &messages {
            self.rev = changed.rev;
            if !changed.key.starts_with(&self.prefix) {
                continue;
            }
            self.apply_one(changed);
            changes.push(Change::from_changed(changed));
        }
        changes
    }

    /// Put an item fetched for a change whose value the stream left out.
    pub fn fill(&mut self, item: Item) {
        if item.key.starts_with(&self.prefix) {
            self.items.insert(item.key.clone(), item);
        }
    }

    fn apply_one(&mut self, changed: &Changed) {
        match changed.op {
            // An omitted value is never guessed: the key waits for `fill`.
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
                };
                self.items.insert(changed.key.clone(), item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Heartbeat, Welcome};
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
        }
    }

    fn snapshot(rev: u64, items: Vec<Item>) -> Items {
        Items {
            epoch: EPOCH.into(),
            rev,
            items,
        }
    }

    fn changed(rev: u64, index: u32, count: u32, key: &str, value: Value) -> Published {
        Published::Changed(Changed {
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
            backfill: false,
        })
    }

    fn heartbeat(epoch: &str, rev: u64) -> Published {
        Published::Heartbeat(Heartbeat {
            epoch: epoch.into(),
            rev,
            time: 3.0,
            interval: 1.0,
        })
    }

    fn synced(rev: u64) -> SyncState {
        let mut state = SyncState::new("");
        state.load_snapshot(snapshot(rev, vec![item("a.x", json!(1), 2)]), 0.0);
        state
    }

    fn applied_keys(step: Step) -> Vec<(u64, String)> {
        match step {
            Step::Applied(changes) => changes.into_iter().map(|c| (c.rev, c.key)).collect(),
            other => panic!("expected Applied, got {other:?}"),
        }
    }

    fn is_resync(step: &Step) -> bool {
        matches!(step, Step::Resync(_))
    }

    #[test]
    fn before_a_snapshot_everything_asks_for_one() {
        let mut state = SyncState::new("");
        assert!(is_resync(&state.on_message(&heartbeat(EPOCH, 0))));
    }

    #[test]
    fn applies_the_next_revision_and_ignores_old_ones() {
        let mut state = synced(5);
        assert_eq!(
            state.on_message(&changed(5, 0, 1, "a.x", json!(9))),
            Step::Nothing
        );
        assert_eq!(
            state.on_message(&changed(3, 0, 1, "a.x", json!(9))),
            Step::Nothing
        );
        let keys = applied_keys(state.on_message(&changed(6, 0, 1, "a.y", json!(2))));
        assert_eq!(keys, vec![(6, "a.y".to_string())]);
        assert_eq!(state.rev(), 6);
        assert_eq!(state.get("a.y").unwrap().value, json!(2));
        assert_eq!(state.get("a.y").unwrap().created_rev, 6);
    }

    #[test]
    fn keeps_created_rev_and_removes_unset_keys() {
        let mut state = synced(5);
        state.on_message(&changed(6, 0, 1, "a.x", json!(7)));
        assert_eq!(state.get("a.x").unwrap().created_rev, 2);
        let keys = applied_keys(state.on_message(&changed(7, 0, 1, "a.x", Value::Null)));
        assert_eq!(keys, vec![(7, "a.x".to_string())]);
        assert!(state.get("a.x").is_none());
    }

    #[test]
    fn a_txn_is_applied_only_when_whole() {
        let mut state = synced(5);
        assert_eq!(
            state.on_message(&changed(6, 0, 3, "a.p", json!(1))),
            Step::Nothing
        );
        assert_eq!(
            state.on_message(&changed(6, 1, 3, "a.q", json!(2))),
            Step::Nothing
        );
        assert!(state.get("a.p").is_none(), "half a txn must not be visible");
        assert_eq!(state.rev(), 5);
        let keys = applied_keys(state.on_message(&changed(6, 2, 3, "a.r", json!(3))));
        assert_eq!(keys.len(), 3);
        assert_eq!(state.rev(), 6);
        assert!(state.get("a.p").is_some());
    }

    #[test]
    fn a_skipped_revision_is_a_gap() {
        let mut state = synced(5);
        assert!(is_resync(&state.on_message(&changed(7, 0, 1, "a.x", json!(1)))));
    }

    #[test]
    fn a_txn_not_starting_at_index_zero_is_a_gap() {
        let mut state = synced(5);
        assert!(is_resync(&state.on_message(&changed(6, 1, 2, "a.x", json!(1)))));
    }

    #[test]
    fn a_missing_txn_member_is_a_gap() {
        let mut state = synced(5);
        state.on_message(&changed(6, 0, 3, "a.p", json!(1)));
        assert!(is_resync(&state.on_message(&changed(6, 2, 3, "a.r", json!(3)))));
    }

    #[test]
    fn a_new_revision_before_the_txn_completes_is_a_gap() {
        let mut state = synced(5);
        state.on_message(&changed(6, 0, 2, "a.p", json!(1)));
        assert!(is_resync(&state.on_message(&changed(7, 0, 1, "a.r", json!(3)))));
    }

    #[test]
    fn another_epoch_means_resync() {
        let mut state = synced(5);
        let mut other = changed(6, 0, 1, "a.x", json!(1));
        if let Published::Changed(c) = &mut other {
            c.epoch = "e2".into();
        }
        assert!(is_resync(&state.on_message(&other)));
        assert!(is_resync(&state.on_message(&heartbeat("e2", 5))));
    }

    #[test]
    fn heartbeat_ahead_of_us_is_a_gap() {
        let mut state = synced(5);
        assert_eq!(state.on_message(&heartbeat(EPOCH, 5)), Step::Nothing);
        assert!(is_resync(&state.on_message(&heartbeat(EPOCH, 6))));
        let welcome = Published::Welcome(Welcome {
            epoch: EPOCH.into(),
            rev: 9,
            topic: String::new(),
            interval: 1.0,
        });
        assert!(is_resync(&state.on_message(&welcome)));
    }

    #[test]
    fn heartbeat_mid_txn_means_its_tail_was_lost() {
        let mut state = synced(5);
        state.on_message(&changed(6, 0, 2, "a.p", json!(1)));
        assert!(is_resync(&state.on_message(&heartbeat(EPOCH, 6))));
    }

    #[test]
    fn unknown_messages_are_ignored() {
        let mut state = synced(5);
        assert_eq!(state.on_message(&Published::Unknown), Step::Nothing);
    }

    #[test]
    fn prefix_filters_the_replica_but_not_the_sequence() {
        let mut state = SyncState::new("plant.");
        state.load_snapshot(
            snapshot(5, vec![item("plant.a", json!(1), 1), item("pump.b", json!(2), 2)]),
            0.0,
        );
        assert_eq!(state.items().len(), 1);
        assert_eq!(
            applied_keys(state.on_message(&changed(6, 0, 1, "pump.b", json!(3)))),
            vec![]
        );
        assert_eq!(state.rev(), 6);
        let keys = applied_keys(state.on_message(&changed(7, 0, 1, "plant.z", json!(3))));
        assert_eq!(keys, vec![(7, "plant.z".to_string())]);
    }

    #[test]
    fn a_resync_reports_what_moved_in_revision_order() {
        let mut state = SyncState::new("");
        let first = state.load_snapshot(
            snapshot(
                5,
                vec![
                    item("keep", json!(1), 1),
                    item("move", json!(1), 2),
                    item("gone", json!(1), 3),
                ],
            ),
            0.0,
        );
        assert_eq!(first.len(), 3, "the first snapshot reports every key");
        let diff = state.load_snapshot(
            snapshot(
                9,
                vec![
                    item("keep", json!(1), 1),
                    item("move", json!(2), 8),
                    item("new", json!(3), 7),
                ],
            ),
            42.0,
        );
        let summary: Vec<(u64, &str, OpKind, bool)> = diff
            .iter()
            .map(|c| (c.rev, c.key.as_str(), c.op, c.resync))
            .collect();
        assert_eq!(
            summary,
            vec![
                (7, "new", OpKind::Set, true),
                (8, "move", OpKind::Set, true),
                (9, "gone", OpKind::Unset, true),
            ]
        );
        assert_eq!(diff[2].time, 42.0);
        assert_eq!(state.rev(), 9);
    }

    #[test]
    fn a_snapshot_drops_a_half_assembled_txn() {
        let mut state = synced(5);
        state.on_message(&changed(6, 0, 2, "a.p", json!(1)));
        state.load_snapshot(snapshot(6, vec![item("a.p", json!(1), 6)]), 0.0);
        // The tail of revision 6 is now old news; revision 7 follows cleanly.
        assert_eq!(
            state.on_message(&changed(6, 1, 2, "a.q", json!(2))),
            Step::Nothing
        );
        assert_eq!(
            applied_keys(state.on_message(&changed(7, 0, 1, "a.x", json!(5)))).len(),
            1
        );
    }
}
