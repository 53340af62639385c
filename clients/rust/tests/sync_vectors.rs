//! The pure replica ([`statehub::sync::SyncState`]) against the table of sync
//! cases shared with the Python client (tests/vectors/sync.json): every input
//! gets exactly the expected answers, and each case ends in the expected state.

use std::fs;
use std::path::PathBuf;

use serde_json::{json, Map, Value};
use statehub::protocol::{ChangePage, Items, Published};
use statehub::sync::{Cause, Change, Outcome, SyncState, Synced};

fn cases() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/sync.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let table: Value = serde_json::from_str(&text).expect("sync.json is JSON");
    table["cases"].as_array().expect("a list of cases").clone()
}

fn change(change: &Change) -> Value {
    json!([change.key, change.op.as_str(), change.value])
}

fn synced(synced: &Synced) -> Value {
    let mut changes: Vec<Value> = synced.changes.iter().map(change).collect();
    changes.sort_by(|a, b| a[0].as_str().cmp(&b[0].as_str()));
    json!({"synced": {
        "rev": synced.rev,
        "epoch": synced.epoch,
        "first": synced.first,
        "resync": synced.resync,
        "cause": synced.cause.as_str(),
        "changes": changes,
    }})
}

fn answer(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Update { rev, origin, changes } => json!({"update": {
            "rev": rev,
            "origin": origin.as_str(),
            "changes": changes.iter().map(change).collect::<Vec<_>>(),
        }}),
        Outcome::Fetch {
            after, limit, cause, ..
        } => {
            json!({"fetch": {"after": after, "limit": limit, "cause": cause.as_str()}})
        }
        Outcome::Resync { cause, .. } => json!({"resync": {"cause": cause.as_str()}}),
        Outcome::CaughtUp {
            rev, replayed, cause, ..
        } => json!({"caught_up": {"rev": rev, "replayed": replayed, "cause": cause.as_str()}}),
    }
}

fn run(state: &mut SyncState, step: &Value) -> Vec<Value> {
    if let Some(load) = step.get("load") {
        let items: Items = serde_json::from_value(load.clone()).expect("an items reply");
        let cause: Cause = serde_json::from_value(step["cause"].clone()).expect("a cause");
        return vec![synced(&state.load(items, cause, "from the table", 0.0))];
    }
    let outcomes = if let Some(message) = step.get("published") {
        let message: Published = serde_json::from_value(message.clone()).expect("a published message");
        state.on_message(&message)
    } else if let Some(page) = step.get("page") {
        let page: ChangePage = serde_json::from_value(page.clone()).expect("a change page");
        state.on_page(&page)
    } else {
        let cause: Cause = serde_json::from_value(step["catch_up"].clone()).expect("a cause");
        vec![state.catch_up(cause, "from the table")]
    };
    outcomes.iter().map(answer).collect()
}

fn final_state(state: &SyncState) -> Value {
    let items: Map<String, Value> = state
        .items()
        .iter()
        .map(|(key, item)| (key.clone(), json!([item.value, item.rev])))
        .collect();
    json!({"epoch": state.epoch().unwrap_or(""), "rev": state.rev(), "items": items})
}

#[test]
fn the_replica_answers_every_case_as_the_table_says() {
    let cases = cases();
    assert!(
        cases.len() >= 15,
        "expected the whole table, got {} cases",
        cases.len()
    );
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let mut state = SyncState::new(case["prefix"].as_str().unwrap());
        for (number, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let answers = run(&mut state, step);
            assert_eq!(
                Value::Array(answers),
                step["expect"],
                "{name}: step {number}: {step}"
            );
        }
        assert_eq!(final_state(&state), case["state"], "{name}: final state");
    }
}
