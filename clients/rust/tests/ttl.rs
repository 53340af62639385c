//! A write's ttl (docs/schema.md, Liveness): its exact bytes, the hub's `ttl` on items
//! and changes, the refusal of a bad ttl before sending. `tests/test_rust.py` runs
//! `statehub-rs set --ttl` against a real hub and watches the key expire.

use std::fs;
use std::path::PathBuf;

use serde_json::json;
use statehub::client::SetOptions;
use statehub::protocol::{decode, encode, Item, Op, Published, Reply, Request, WriteMeta};
use statehub::{Client, Error};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("statehub-rs-ttl-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn meta(request_id: &str) -> WriteMeta {
    WriteMeta {
        request_id: request_id.into(),
        source: "rust".into(),
        user: "ana".into(),
        backfill: false,
    }
}

// The bytes below are what the Python client's encoder (msgspec) writes for the same
// messages: `ttl` after the write's provenance, as a float64 (0xcb), absent when None.

#[test]
fn a_set_with_a_ttl_encodes_to_the_python_clients_bytes() {
    let set = |ttl| Request::Set {
        v: 1,
        key: "svc.beat".into(),
        value: json!(true),
        expect: None,
        secret: String::new(),
        meta: meta("r1"),
        ttl,
    };
    let python_30 =
        "88a474797065a3736574a17601a36b6579a87376632e62656174a576616c7565c3aa726571756573745f6964\
                     a27231a6736f75726365a472757374a475736572a3616e61a374746ccb403e000000000000";
    let python_1_5 =
        "88a474797065a3736574a17601a36b6579a87376632e62656174a576616c7565c3aa726571756573745f6964\
                      a27231a6736f75726365a472757374a475736572a3616e61a374746ccb3ff8000000000000";
    assert_eq!(encode(&set(Some(30.0))).unwrap(), unhex(python_30));
    assert_eq!(encode(&set(Some(1.5))).unwrap(), unhex(python_1_5));
    // Without a ttl the map has one entry less and no "ttl" at all.
    let plain = encode(&set(None)).unwrap();
    assert_eq!(plain[0], 0x87);
    assert!(!plain.windows(4).any(|w| w == b"\xa3ttl"));
}

#[test]
fn a_txn_op_with_a_ttl_encodes_to_the_python_clients_bytes() {
    let txn = Request::Txn {
        v: 1,
        ops: vec![Op::set("svc.a", json!(1)).expect(3).ttl(2.5), Op::unset("svc.b")],
        meta: meta("r2"),
    };
    let python = "86a474797065a374786ea17601a36f70739285a26f70a3736574a36b6579a57376632e61a576616c756501a6657870\
                  65637403a374746ccb400400000000000082a26f70a5756e736574a36b6579a57376632e62aa726571756573745f6964\
                  a27232a6736f75726365a472757374a475736572a3616e61";
    assert_eq!(encode(&txn).unwrap(), unhex(python));
}

#[test]
fn items_changes_and_commits_carry_what_the_hub_adds() {
    let item =
        "88a474797065a46974656da36b6579a87376632e62656174a576616c7565c3a372657607ab637265617465645f726576\
                03a474696d65cb41dabf61b0200000a6736f75726365a472757374a374746ccb403e000000000000";
    let Reply::Item(item) = decode::<Reply>(&unhex(item)).unwrap() else {
        panic!("an item")
    };
    assert_eq!(item.ttl, Some(30.0));
    let changed = "8ca474797065a76368616e676564a565706f6368a26531a372657607a5696e64657800a5636f756e7401a36b6579a8\
                   7376632e62656174a26f70a3736574a474696d65cb41dabf61b0200000a576616c7565c3a6736f75726365a4727573\
                   74a8707265765f72657603a374746ccb3ff8000000000000";
    let Published::Changed(changed) = decode::<Published>(&unhex(changed)).unwrap() else {
        panic!("a change")
    };
    assert_eq!(changed.ttl, Some(1.5));
    let committed =
        "84a474797065a9636f6d6d6974746564a565706f6368a26531a372657607a87761726e696e677391bb7376632e62\
                     6561743a206e6f7420696e2074686520736368656d61";
    let Reply::Committed(committed) = decode::<Reply>(&unhex(committed)).unwrap() else {
        panic!("a commit")
    };
    assert_eq!(committed.warnings, ["svc.beat: not in the schema"]);
    // An item from a hub that says nothing of ttls has none.
    let old = Item {
        ttl: None,
        ..item.clone()
    };
    let Reply::Item(decoded) = decode::<Reply>(&encode(&Reply::Item(old)).unwrap()).unwrap() else {
        panic!("an item")
    };
    assert_eq!(decoded.ttl, None);
}

#[test]
fn a_bad_ttl_is_refused_in_the_hubs_words_before_anything_is_sent() {
    // No hub at all: a write that were sent would fail as "hub unavailable" (exit 5).
    let dir = temp_dir("refused");
    let mut client = Client::builder().data_dir(&dir).build().unwrap();
    let with_ttl = |ttl| SetOptions {
        ttl: Some(ttl),
        ..Default::default()
    };
    let refused = client.set_with("svc.beat", 1, with_ttl(0.0)).unwrap_err();
    assert_eq!(
        refused,
        Error::Invalid("invalid ttl for 'svc.beat': expected seconds > 0, got 0.0".into())
    );
    assert_eq!(refused.exit_code(), 2);
    let too_long = client.set_with("svc.beat", 1, with_ttl(4e7)).unwrap_err();
    assert_eq!(
        too_long.message(),
        "invalid ttl for 'svc.beat': 4e+07 s is more than the limit of 31622400 s (a year)"
    );
    let unset = client
        .txn(vec![Op::set("svc.a", json!(1)), Op::unset("svc.b").ttl(5.0)])
        .unwrap_err();
    assert_eq!(
        unset.message(),
        "a ttl goes with a set, not with the unset of 'svc.b'"
    );
    let sent = client.set_with("svc.beat", 1, with_ttl(30.0)).unwrap_err();
    assert!(
        matches!(sent, Error::HubUnavailable(_)),
        "a good ttl is sent: {sent:?}"
    );
    fs::remove_dir_all(&dir).unwrap();
}
