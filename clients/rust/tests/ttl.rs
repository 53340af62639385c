//! A write's ttl (docs/schema.md, Liveness): its exact bytes, the hub's `ttl` on items
//! and changes, the refusal of a bad ttl before sending, and the keepalive thread
//! against a fake hub (a ROUTER in this process). `tests/test_rust_ttl.py` runs
//! `statehub-rs set --ttl` against a real hub and watches the key expire.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use statehub::client::SetOptions;
use statehub::protocol::{decode, encode, Committed, Item, Items, Op, Published, Reply, Request, WriteMeta};
use statehub::{Client, Error, Keepalive};

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

/// A fake hub at `dir` holding `items`: answers `get` and `list` from them and each `txn`
/// with a commit, `answers` requests in all; returns the txns (and the socket, kept open
/// until the client has read the last reply).
fn fake_hub(dir: &Path, items: Vec<Item>, answers: usize) -> thread::JoinHandle<(Vec<Request>, zmq::Socket)> {
    let context = zmq::Context::new();
    let router = context.socket(zmq::ROUTER).unwrap();
    router.set_rcvtimeo(10_000).unwrap(); // a test that goes wrong fails instead of hanging
    let rpc = format!("ipc://{}/rpc.sock", dir.display());
    router.bind(&rpc).unwrap();
    let info = json!({"pid": 1, "version": "test", "protocol": 1, "rpc": rpc, "events": "ipc:///nonexistent", "started": 0.0});
    fs::write(dir.join("hub.json"), info.to_string()).unwrap();
    thread::spawn(move || {
        let mut taken = Vec::new();
        for _ in 0..answers {
            let frames = router.recv_multipart(0).expect("a request within 10 s");
            let request: Request = decode(frames.last().unwrap()).unwrap();
            let reply = match &request {
                Request::Get { key, .. } => {
                    Reply::Item(items.iter().find(|i| &i.key == key).unwrap().clone())
                }
                Request::List { prefix, .. } => Reply::Items(Items {
                    epoch: "e".into(),
                    rev: 9,
                    items: items
                        .iter()
                        .filter(|i| i.key.starts_with(prefix.as_str()))
                        .cloned()
                        .collect(),
                }),
                Request::Txn { .. } => Reply::Committed(Committed {
                    epoch: "e".into(),
                    rev: 10 + taken.len() as u64,
                    duplicate: false,
                    warnings: Vec::new(),
                }),
                other => panic!("unexpected request {other:?}"),
            };
            if matches!(request, Request::Txn { .. }) {
                taken.push(request);
            }
            let mut answer = frames[..frames.len() - 1].to_vec();
            answer.push(encode(&reply).unwrap());
            router.send_multipart(answer, 0).unwrap();
        }
        (taken, router)
    })
}

fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    done()
}

#[test]
fn keepalive_writes_the_current_value_again_with_its_ttl_each_interval() {
    let dir = temp_dir("keepalive");
    let current = Item {
        key: "svc.pumpd.up".into(),
        value: json!("yes"),
        rev: 4,
        created_rev: 2,
        time: 1.0,
        source: "pumpd".into(),
        user: String::new(),
        secret: false,
        origin: None,
        ttl: Some(3.0),
    };
    let hub = fake_hub(&dir, vec![current], 4); // two beats: a get and a txn each
                                                // A beat after the fake hub's last answer waits this long for nothing before stop() returns.
    let client = Client::builder()
        .data_dir(&dir)
        .timeout(Duration::from_secs(2))
        .source("pumpd")
        .build()
        .unwrap();
    let beat = Keepalive::builder(client, ["svc.pumpd.up"], Duration::from_millis(50))
        .ttl(3.0)
        .start()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || beat.beats() >= 2),
        "two beats within 10 s; last error: {:?}",
        beat.last_error()
    );
    assert!(beat.is_running());
    beat.stop();
    let (txns, _router) = hub.join().unwrap();
    for txn in txns {
        let Request::Txn { ops, meta, .. } = txn else {
            unreachable!("only txns are kept")
        };
        // The same value again, only if nobody wrote it since, with the ttl.
        assert_eq!(ops, [Op::set("svc.pumpd.up", json!("yes")).expect(4).ttl(3.0)]);
        assert_eq!(meta.source, "pumpd");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keepalive_writes_what_its_value_function_gives() {
    let dir = temp_dir("keepalive-value");
    let hub = fake_hub(&dir, Vec::new(), 1);
    let client = Client::builder()
        .data_dir(&dir)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let beat = Keepalive::builder(client, ["svc.a.beat"], Duration::from_secs(60))
        .ttl(90.0)
        .value(|key| json!(format!("{key} alive")))
        .start()
        .unwrap();
    let (txns, _router) = hub.join().unwrap();
    assert!(wait_until(Duration::from_secs(10), || beat.beats() == 1));
    drop(beat); // dropping stops it, mid-interval, without waiting out the 60 s
    let Request::Txn { ops, .. } = &txns[0] else {
        unreachable!("only txns are kept")
    };
    assert_eq!(ops, &[Op::set("svc.a.beat", json!("svc.a.beat alive")).ttl(90.0)]);
    fs::remove_dir_all(&dir).unwrap();
}

fn item(key: &str, source: &str, secret: bool, rev: u64) -> Item {
    Item {
        key: key.into(),
        value: json!(rev),
        rev,
        created_rev: 1,
        time: 1.0,
        source: source.into(),
        user: String::new(),
        secret,
        origin: None,
        ttl: None,
    }
}

#[test]
fn keepalive_of_a_prefix_renews_the_keys_its_source_wrote_last_and_no_secret() {
    let dir = temp_dir("keepalive-prefix");
    let items = vec![
        item("svc.pumpd.flow", "pumpd", false, 5),
        item("svc.pumpd.level", "gui", false, 6), // someone else's: theirs to keep
        item("svc.pumpd.token", "pumpd", true, 7), // a placeholder written back renews nothing
        item("svc.pumpd.up", "pumpd", false, 8),
    ];
    let hub = fake_hub(&dir, items, 2); // a list, then the txn
    let client = Client::builder()
        .data_dir(&dir)
        .timeout(Duration::from_secs(5))
        .source("pumpd")
        .build()
        .unwrap();
    let beat = Keepalive::builder(client, ["svc.pumpd."], Duration::from_secs(60))
        .ttl(20.0)
        .start()
        .unwrap();
    let (txns, _router) = hub.join().unwrap();
    assert!(wait_until(Duration::from_secs(10), || beat.beats() == 1));
    beat.stop();
    let Request::Txn { ops, .. } = &txns[0] else {
        unreachable!("only txns are kept")
    };
    assert_eq!(
        ops,
        &[
            Op::set("svc.pumpd.flow", json!(5)).expect(5).ttl(20.0),
            Op::set("svc.pumpd.up", json!(8)).expect(8).ttl(20.0),
        ]
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keepalive_refuses_bad_settings_before_it_starts() {
    let dir = temp_dir("keepalive-bad");
    let client = || Client::builder().data_dir(&dir).build().unwrap();
    let bad_ttl = Keepalive::builder(client(), ["svc.a"], Duration::from_secs(1))
        .ttl(-1.0)
        .start()
        .err()
        .unwrap();
    assert_eq!(
        bad_ttl.message(),
        "invalid ttl for 'svc.a': expected seconds > 0, got -1.0"
    );
    let no_interval = Keepalive::builder(client(), ["svc.a"], Duration::ZERO)
        .start()
        .err()
        .unwrap();
    assert_eq!(
        no_interval.message(),
        "keepalive interval must be > 0 seconds, got 0"
    );
    let bad_key = Keepalive::builder(client(), ["svc..a"], Duration::from_secs(1))
        .start()
        .err()
        .unwrap();
    assert_eq!(
        bad_key.message(),
        "invalid key 'svc..a': empty segment at position 4"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn explain_tells_when_a_stored_key_with_a_ttl_goes() {
    let dir = temp_dir("explain");
    let mut alive = item("svc.pumpd.up", "pumpd", false, 5);
    alive.time = 1_795_000_000.5;
    alive.ttl = Some(30.0);
    let hub = fake_hub(&dir, vec![alive, item("svc.pumpd.flow", "pumpd", false, 6)], 2);
    let mut client = Client::builder()
        .data_dir(&dir)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let waterfall = statehub::Waterfall::default();
    let explained = waterfall.explain(&mut client, "svc.pumpd.up").unwrap();
    assert_eq!(explained.stored_ttl, Some(30.0));
    assert_eq!(explained.stored_expires, Some(1_795_000_030.5));
    let plain = waterfall.explain(&mut client, "svc.pumpd.flow").unwrap();
    assert_eq!((plain.stored_ttl, plain.stored_expires), (None, None));
    drop(hub.join().unwrap());
    fs::remove_dir_all(&dir).unwrap();
}
