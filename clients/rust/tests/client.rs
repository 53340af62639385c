//! The client against a fake hub (a ROUTER in this process) and against no hub
//! at all: Lazy Pirate timing, idempotent resends, the mirror fallback.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};
use statehub::protocol::{decode, encode, Committed, Reply, Request};
use statehub::{Client, Error};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("statehub-rs-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_hub_json(dir: &Path, rpc: &str, events: &str) {
    let info =
        json!({"pid": 1, "version": "test", "protocol": 1, "rpc": rpc, "events": events, "started": 0.0});
    fs::write(dir.join("hub.json"), info.to_string()).unwrap();
}

fn client(dir: &Path, timeout_ms: u64) -> statehub::ClientBuilder {
    Client::builder()
        .data_dir(dir)
        .timeout(Duration::from_millis(timeout_ms))
}

#[test]
fn a_write_whose_connection_drops_is_resent_with_the_same_request_id() {
    let dir = temp_dir("resend");
    let context = zmq::Context::new();
    let rpc = format!("ipc://{}/rpc.sock", dir.display());
    let first = context.socket(zmq::ROUTER).unwrap();
    first.bind(&rpc).unwrap();
    write_hub_json(&dir, &rpc, "ipc:///nonexistent");
    // The fake hub takes the write, goes away unanswered, comes back and answers the resend.
    let endpoint = rpc.clone();
    let hub = thread::spawn(move || {
        let mut bodies = Vec::new();
        let frames = first.recv_multipart(0).unwrap();
        bodies.push(frames.last().unwrap().clone());
        drop(first); // the connection drops with the write unanswered
        let second = context.socket(zmq::ROUTER).unwrap();
        second.bind(&endpoint).unwrap();
        let frames = second.recv_multipart(0).unwrap();
        bodies.push(frames.last().unwrap().clone());
        let reply = Reply::Committed(Committed {
            epoch: "e".into(),
            rev: 7,
            duplicate: false,
            warnings: Vec::new(),
        });
        let mut answer = frames[..frames.len() - 1].to_vec();
        answer.push(encode(&reply).unwrap());
        second.send_multipart(answer, 0).unwrap();
        // Hand the socket back rather than closing it here: the client uses
        // IMMEDIATE, so a peer that disconnects at once takes its unread reply along.
        (bodies, second)
    });
    let mut client = client(&dir, 30_000).source("test").build().unwrap();
    let committed = client.set("a.b", 1, None).unwrap();
    assert_eq!(committed.rev, 7);
    let (bodies, _router) = hub.join().unwrap();
    assert_eq!(
        bodies[0], bodies[1],
        "a resend must be the same request, request_id and all"
    );
    let Request::Set { meta, .. } = decode(&bodies[0]).unwrap() else {
        panic!("expected a set request")
    };
    assert_eq!(meta.request_id.len(), 36);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unanswered_read_is_hub_unavailable_an_unanswered_write_unknown_and_the_next_request_works() {
    let dir = temp_dir("timeout");
    let context = zmq::Context::new();
    let router = context.socket(zmq::ROUTER).unwrap();
    let rpc = format!("ipc://{}/rpc.sock", dir.display());
    router.bind(&rpc).unwrap();
    write_hub_json(&dir, &rpc, "ipc:///nonexistent");
    let hub = thread::spawn(move || {
        let _ignored_read = router.recv_multipart(0).unwrap();
        let _ignored_write = router.recv_multipart(0).unwrap();
        let frames = router.recv_multipart(0).unwrap();
        let reply = Reply::Error(statehub::protocol::ErrorReply {
            code: "not_found".into(),
            message: "no key 'a.b'".into(),
            conflicts: vec![],
        });
        let mut answer = frames[..frames.len() - 1].to_vec();
        answer.push(encode(&reply).unwrap());
        router.send_multipart(answer, 0).unwrap();
        router // kept open until the client has read the reply (see above)
    });
    let mut client = client(&dir, 300).mirror_fallback(false).build().unwrap();
    let read = client.get("a.b").unwrap_err();
    assert_eq!(
        read,
        Error::HubUnavailable(format!(
            "the hub (pid 1) at {rpc} did not answer within 0.3 s; {}",
            statehub::reachability::SILENT_HINT
        ))
    );
    let write = client.set("a.b", 1, None).unwrap_err();
    assert!(matches!(write, Error::OutcomeUnknown(_)), "{write:?}");
    assert!(write.message().starts_with(&format!(
        "the hub (pid 1) at {rpc} received the write but did not answer within 0.3 s; the write may or may not \
         have been applied"
    )));
    assert_eq!(write.exit_code(), 7);
    // Lazy Pirate: the stuck REQ was replaced, so this send is allowed.
    let second = client.get("a.b").unwrap_err();
    assert_eq!(second, Error::NotFound("no key 'a.b'".into()));
    assert_eq!(second.exit_code(), 3);
    drop(hub.join().unwrap());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn with_no_hub_reads_come_from_the_mirror() {
    let dir = temp_dir("mirror");
    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors");
    fs::copy(vectors.join("mirror.txt"), dir.join("state.txt")).unwrap();
    let mut client = client(&dir, 300).build().unwrap();

    let fetched = client.get("plant.rate").unwrap();
    assert_eq!(fetched.data.value, json!(30.5));
    let mirror = fetched.mirror.expect("marked as from the mirror");
    assert_eq!(mirror.rev, 11);
    assert!(mirror.notice().contains("revision 11"));

    let listed = client.list("plant.").unwrap();
    let keys: Vec<&str> = listed.data.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["plant.name", "plant.rate"]);
    assert!(listed.from_mirror());

    let missing = client.get("plant.none").unwrap_err();
    assert!(matches!(missing, Error::NotFound(_)), "{missing:?}");
    // Writes never fall back: there is nobody to write to, and no hub.json says so at once.
    let write = client.set("plant.rate", Value::from(1), None).unwrap_err();
    assert_eq!(write.exit_code(), 5);
    assert_eq!(
        write.message(),
        format!(
            "the hub is not running (no {}); start it with `statehub serve`",
            dir.join("hub.json").display()
        )
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn with_no_hub_and_no_mirror_reads_are_hub_unavailable() {
    let dir = temp_dir("nothing");
    let mut client = client(&dir, 300).build().unwrap();
    let err = client.get("a.b").unwrap_err();
    assert!(matches!(err, Error::HubUnavailable(_)), "{err:?}");
    assert!(err.message().contains("no usable mirror"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}
