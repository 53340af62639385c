//! The subscriber's sync algorithm over real sockets, against a scripted fake
//! hub in this process: first sync, whole txns, a dropped message (gap →
//! replay from the fake hub's history), heartbeat silence (hub down) and return
//! (a catch-up from history, no resync).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use statehub::protocol::{
    decode, encode, ChangePage, Changed, Heartbeat, Item, Items, OpKind, Published, Reply, Request, Welcome,
};
use statehub::{Change, Client, Event, Origin, Subscriber, SubscriberOptions};

const EPOCH: &str = "fake-epoch";
const INTERVAL: f64 = 0.2;

type Revision = (Vec<(&'static str, Value)>, Vec<u32>);

enum Command {
    /// Commit revisions of (key, value) sets, publishing all but the listed
    /// indexes; all at once, so no heartbeat comes between them.
    Commit(Vec<Revision>),
    /// Stop or resume heartbeats (a hub that went silent).
    Heartbeats(bool),
    Stop,
}

struct FakeHub {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl FakeHub {
    fn start(name: &str) -> FakeHub {
        let dir = std::env::temp_dir().join(format!("statehub-rs-sub-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let rpc = format!("ipc://{}/rpc.sock", dir.display());
        let events = format!("ipc://{}/events.sock", dir.display());
        let info =
            json!({"pid": 1, "version": "fake", "protocol": 1, "rpc": rpc, "events": events, "started": 0.0});
        fs::write(dir.join("hub.json"), info.to_string()).unwrap();
        let (commands, inbox) = channel();
        let thread = thread::spawn(move || serve(&rpc, &events, inbox));
        FakeHub {
            commands,
            thread: Some(thread),
            dir,
        }
    }

    fn send(&self, command: Command) {
        self.commands.send(command).unwrap();
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The fake hub's loop: answer snapshots, welcome subscriptions, publish.
fn serve(rpc: &str, events: &str, inbox: Receiver<Command>) {
    let context = zmq::Context::new();
    let router = context.socket(zmq::ROUTER).unwrap();
    router.bind(rpc).unwrap();
    let xpub = context.socket(zmq::XPUB).unwrap();
    xpub.set_xpub_verbose(true).unwrap();
    xpub.bind(events).unwrap();
    let mut store: BTreeMap<String, Item> = BTreeMap::new();
    store.insert("a".into(), item("a", json!(1), 1));
    let mut history: Vec<Changed> = vec![changed(1, 0, 1, "a", json!(1))];
    let mut rev = 1;
    let mut beating = true;
    let mut next_beat = Instant::now();
    loop {
        let mut items = [router.as_poll_item(zmq::POLLIN), xpub.as_poll_item(zmq::POLLIN)];
        zmq::poll(&mut items, 10).unwrap();
        if items[0].is_readable() {
            let mut frames = router.recv_multipart(0).unwrap();
            let body = frames.pop().unwrap();
            let reply = match decode(&body).unwrap() {
                Request::Changes { after, .. } => Reply::ChangePage(ChangePage {
                    epoch: EPOCH.into(),
                    after,
                    last: rev,
                    head: rev,
                    oldest: 1,
                    changes: history.iter().filter(|c| c.rev > after).cloned().collect(),
                    more: false,
                    compacted: false,
                }),
                _ => Reply::Items(Items {
                    epoch: EPOCH.into(),
                    rev,
                    items: store.values().cloned().collect(),
                }),
            };
            frames.push(encode(&reply).unwrap());
            router.send_multipart(frames, 0).unwrap();
        }
        if items[1].is_readable() {
            let frame = xpub.recv_bytes(0).unwrap();
            if frame.first() == Some(&1) {
                let welcome = Published::Welcome(Welcome {
                    epoch: EPOCH.into(),
                    rev,
                    topic: String::from_utf8_lossy(&frame[1..]).into(),
                    interval: INTERVAL,
                });
                publish(&xpub, &frame[1..], &welcome);
            }
        }
        if beating && Instant::now() >= next_beat {
            let beat = Published::Heartbeat(Heartbeat {
                epoch: EPOCH.into(),
                rev,
                time: 0.0,
                interval: INTERVAL,
            });
            publish(&xpub, b"@hb", &beat);
            next_beat = Instant::now() + Duration::from_secs_f64(INTERVAL);
        }
        match inbox.try_recv() {
            Ok(Command::Commit(revisions)) => {
                for (ops, dropped) in revisions {
                    rev += 1;
                    commit(&xpub, &mut store, &mut history, rev, ops, &dropped);
                }
            }
            Ok(Command::Heartbeats(on)) => beating = on,
            Ok(Command::Stop) => return,
            Err(_) => {}
        }
    }
}

fn commit(
    xpub: &zmq::Socket,
    store: &mut BTreeMap<String, Item>,
    history: &mut Vec<Changed>,
    rev: u64,
    ops: Vec<(&'static str, Value)>,
    dropped: &[u32],
) {
    let count = ops.len() as u32;
    for (index, (key, value)) in ops.into_iter().enumerate() {
        let index = index as u32;
        store.insert(key.into(), item(key, value.clone(), rev));
        let change = changed(rev, index, count, key, value);
        history.push(change.clone());
        if !dropped.contains(&index) {
            publish(xpub, key.as_bytes(), &Published::Changed(change));
        }
    }
}

fn changed(rev: u64, index: u32, count: u32, key: &str, value: Value) -> Changed {
    Changed {
        epoch: EPOCH.into(),
        rev,
        index,
        count,
        key: key.into(),
        op: OpKind::Set,
        time: 1.0,
        value,
        source: "fake".into(),
        user: String::new(),
        secret: false,
        value_omitted: false,
        prev_rev: 0,
        backfill: false,
        origin: None,
        ttl: None,
    }
}

fn publish(xpub: &zmq::Socket, topic: &[u8], message: &Published) {
    xpub.send_multipart([topic.to_vec(), encode(message).unwrap()], 0)
        .unwrap();
}

fn item(key: &str, value: Value, rev: u64) -> Item {
    Item {
        key: key.into(),
        value,
        rev,
        created_rev: rev,
        time: 1.0,
        source: "fake".into(),
        user: String::new(),
        secret: false,
        origin: None,
        ttl: None,
    }
}

/// The next event that is not `None`, within `limit`.
fn next(subscriber: &mut Subscriber, limit: Duration) -> Event {
    subscriber
        .next_event(limit)
        .unwrap()
        .unwrap_or_else(|| panic!("no event within {limit:?}"))
}

fn change(event: Event) -> Change {
    match event {
        Event::Change(change) => change,
        other => panic!("expected a change, got {other:?}"),
    }
}

#[test]
fn follows_resyncs_and_survives_silence() {
    let hub = FakeHub::start("follow");
    let client = Client::builder()
        .data_dir(&hub.dir)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let options = SubscriberOptions {
        prefix: String::new(),
        initial: true,
        since: None,
    };
    let mut sub = Subscriber::new(client, options).unwrap();
    let wait = Duration::from_secs(3);

    // First sync, and the initial state as synthetic changes.
    match next(&mut sub, wait) {
        Event::Synced {
            rev: 1,
            resync: false,
            ..
        } => {}
        other => panic!("expected the first sync, got {other:?}"),
    }
    let initial = change(next(&mut sub, wait));
    assert_eq!((initial.key.as_str(), initial.resync), ("a", true));

    // A txn arrives whole, in order.
    hub.send(Command::Commit(vec![(
        vec![("b", json!(2)), ("c", json!(3.0))],
        vec![],
    )]));
    let b = change(next(&mut sub, wait));
    let c = change(next(&mut sub, wait));
    assert_eq!((b.rev, b.key.as_str(), b.index, b.count), (2, "b", 0, 2));
    assert_eq!(
        (c.rev, c.key.as_str(), c.index, c.value.clone()),
        (2, "c", 1, json!(3.0))
    );
    assert_eq!(sub.get("c").unwrap().value, json!(3.0));

    // Revision 3 is lost on the way: the gap is seen and filled from history, in order.
    hub.send(Command::Commit(vec![
        (vec![("d", json!(4))], vec![0]),
        (vec![("e", json!(5))], vec![]),
    ]));
    let d = change(next(&mut sub, wait));
    let e = change(next(&mut sub, wait));
    assert_eq!((d.key.as_str(), d.rev, d.origin), ("d", 3, Origin::Replay));
    assert_eq!((e.key.as_str(), e.rev, e.origin), ("e", 4, Origin::Replay));
    match next(&mut sub, wait) {
        Event::CaughtUp {
            rev: 4, replayed: 2, ..
        } => {}
        other => panic!("expected the catch-up to end, got {other:?}"),
    }
    assert_eq!((sub.resync_count(), sub.replayed_count()), (0, 2));

    // Silence for three heartbeat intervals: the hub is presumed down.
    hub.send(Command::Heartbeats(false));
    match next(&mut sub, wait) {
        Event::HubDown { reason, .. } => assert!(reason.contains("heartbeat"), "{reason}"),
        other => panic!("expected hub down, got {other:?}"),
    }
    assert!(!sub.is_live());

    // It comes back: the subscriber catches up on its own (nothing missed) and follows again.
    hub.send(Command::Heartbeats(true));
    match next(&mut sub, wait) {
        Event::CaughtUp {
            rev: 4, replayed: 0, ..
        } => {}
        other => panic!("expected a catch-up after the outage, got {other:?}"),
    }
    assert!(sub.is_live());
    assert_eq!(sub.resync_count(), 0);
    hub.send(Command::Commit(vec![(vec![("f", json!("six"))], vec![])]));
    let f = change(next(&mut sub, wait));
    assert_eq!((f.key.as_str(), f.rev, f.origin), ("f", 5, Origin::Live));
    assert_eq!(sub.cursor(), Some((EPOCH.to_string(), 5)));
}
