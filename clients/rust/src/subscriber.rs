//! Following the hub's change stream without ever silently missing a change:
//! the sync algorithm of docs/protocol.md section 5 over real sockets.
//!
//! The [`Subscriber`] owns a SUB socket and a [`Client`] (for snapshots) and is
//! driven by the caller: [`Subscriber::next_event`] blocks up to a timeout and
//! returns the next [`Event`]. Everything runs on the caller's thread, because
//! ZeroMQ sockets must not be shared between threads.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::protocol::{decode, Item, Published, DEFAULT_HEARTBEAT};
use crate::remote::{self, Remote};
use crate::sync::{Change, Step, SyncState};
use crate::util::now;

/// The hub is presumed down after this many heartbeat intervals of silence.
const SILENT_INTERVALS: u32 = 3;
/// How often a subscriber that lost the hub looks for it again (re-reading
/// `hub.json`, since a restarted hub may listen elsewhere).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// ZeroMQ's default receive high-water mark is 1000 messages; a slow consumer
/// would then see gaps (and resyncs) early. Queue more before that happens.
const RECEIVE_HWM: i32 = 100_000;

/// What a subscriber reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A key under the prefix changed. Live changes come whole revision by whole
    /// revision, in order; after a resync, synthetic ones (`change.resync`)
    /// bring every key that moved meanwhile to its current value.
    Change(Change),
    /// The replica was (re)loaded from a snapshot at `rev`. `resync` is false only
    /// for the first one.
    Synced {
        epoch: String,
        rev: u64,
        resync: bool,
        /// Why the stream had to be resynchronised (empty for the first sync).
        reason: String,
    },
    /// No heartbeat for three intervals, or no welcome: the hub is presumed down.
    /// The subscriber keeps trying and reports `Synced` when the hub is back.
    HubDown { reason: String },
}

/// Settings of a [`Subscriber`].
#[derive(Debug, Clone, Default)]
pub struct SubscriberOptions {
    /// Report changes only for keys starting with this (the stream itself is
    /// always subscribed whole, to see gaps in the global revision sequence).
    pub prefix: String,
    /// Report the initial state as synthetic changes after the first snapshot.
    pub initial: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Step 2: subscribed, waiting for a welcome proving the subscription is live.
    AwaitWelcome { until: Instant },
    /// Step 3: take a snapshot now.
    Snapshot { reason: String },
    /// Step 5: applying the stream.
    Live,
    /// Step 6: the hub is presumed down; look again at `retry`.
    Down { retry: Instant },
}

pub struct Subscriber {
    client: Client,
    options: SubscriberOptions,
    socket: zmq::Socket,
    endpoint: String,
    state: SyncState,
    phase: Phase,
    /// Messages received before the snapshot they must follow (step 1).
    buffer: Vec<Published>,
    events: VecDeque<Event>,
    /// The hub's heartbeat interval, as its welcomes and heartbeats announce it.
    interval: Duration,
    last_message: Instant,
    synced_once: bool,
    resyncs: u64,
}

impl Subscriber {
    /// Subscribe through `client`'s data dir and context. The client is kept for
    /// snapshots (it waits ten times its timeout for one).
    pub fn new(client: Client, options: SubscriberOptions) -> Result<Subscriber> {
        let endpoint = client.endpoints().events;
        let socket = open_sub(client.context(), &endpoint, client.remote())?;
        let state = SyncState::new(options.prefix.clone());
        let interval = Duration::from_secs_f64(DEFAULT_HEARTBEAT);
        let mut subscriber = Subscriber {
            client,
            options,
            socket,
            endpoint,
            state,
            phase: Phase::Live,
            buffer: Vec::new(),
            events: VecDeque::new(),
            interval,
            last_message: Instant::now(),
            synced_once: false,
            resyncs: 0,
        };
        subscriber.phase = subscriber.await_welcome();
        Ok(subscriber)
    }

    /// How many times the stream was resynchronised after the first sync
    /// (gaps, epoch changes, hub restarts).
    pub fn resync_count(&self) -> u64 {
        self.resyncs
    }

    /// True while the replica follows a live hub.
    pub fn is_live(&self) -> bool {
        self.phase == Phase::Live
    }

    /// The replica: every key under the prefix as of revision [`Subscriber::rev`].
    pub fn items(&self) -> &std::collections::BTreeMap<String, Item> {
        self.state.items()
    }

    pub fn get(&self, key: &str) -> Option<&Item> {
        self.state.get(key)
    }

    /// The last revision applied to the replica.
    pub fn rev(&self) -> u64 {
        self.state.rev()
    }

    /// Wait up to `timeout` for the next event; `Ok(None)` when there was none.
    /// Call it in a loop; the sync algorithm advances only inside this call.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            // Step at least once, so a zero timeout still polls without blocking.
            self.advance(deadline)?;
            if self.events.is_empty() && Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// Do one step of the algorithm, waiting at most until `deadline`.
    fn advance(&mut self, deadline: Instant) -> Result<()> {
        match self.phase.clone() {
            Phase::AwaitWelcome { until } => {
                if let Some(message) = self.receive(deadline.min(until))? {
                    let welcomed = matches!(message, Published::Welcome(_));
                    self.buffer.push(message);
                    if welcomed {
                        self.phase = Phase::Snapshot {
                            reason: String::new(),
                        };
                    }
                } else if Instant::now() >= until {
                    self.hub_down("no welcome from the hub".into());
                }
            }
            Phase::Snapshot { reason } => self.snapshot(reason)?,
            Phase::Live => {
                let silent_until = self.last_message + self.interval * SILENT_INTERVALS;
                if let Some(message) = self.receive(deadline.min(silent_until))? {
                    self.apply(&message);
                } else if Instant::now() >= silent_until {
                    let silence = self.interval * SILENT_INTERVALS;
                    self.hub_down(format!("no heartbeat for {:.1} s", silence.as_secs_f64()));
                }
            }
            Phase::Down { retry } => {
                if let Some(message) = self.receive(deadline.min(retry))? {
                    // Any message proves the subscription is live again (a
                    // reconnecting SUB re-sends it and the hub welcomes it).
                    self.buffer.push(message);
                    self.phase = Phase::Snapshot {
                        reason: "the hub is back".into(),
                    };
                } else if Instant::now() >= retry {
                    self.look_for_hub()?;
                }
            }
        }
        Ok(())
    }

    /// Steps 3 and 4: load a snapshot, then apply what was buffered meanwhile.
    fn snapshot(&mut self, reason: String) -> Result<()> {
        let items = match self.client.snapshot(&self.options.prefix) {
            Ok(items) => items,
            Err(Error::HubUnavailable(why)) => {
                self.hub_down(format!("snapshot failed: {why}"));
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        let (epoch, rev) = (items.epoch.clone(), items.rev);
        let diff = self.state.load_snapshot(items, now());
        let resync = self.synced_once;
        if resync {
            self.resyncs += 1;
        }
        self.events.push_back(Event::Synced {
            epoch,
            rev,
            resync,
            reason,
        });
        if resync || self.options.initial {
            self.events.extend(diff.into_iter().map(Event::Change));
        }
        self.synced_once = true;
        self.phase = Phase::Live;
        self.last_message = Instant::now();
        for message in std::mem::take(&mut self.buffer) {
            self.apply(&message);
        }
        Ok(())
    }

    /// Step 5 for one message: apply it, or start a resync.
    fn apply(&mut self, message: &Published) {
        if let Phase::Snapshot { .. } = self.phase {
            return; // a resync is already due; the snapshot supersedes this message
        }
        match self.state.on_message(message) {
            Step::Nothing => {}
            Step::Applied(changes) => {
                let changes: Vec<Change> = changes.into_iter().map(|c| self.complete(c)).collect();
                self.events.extend(changes.into_iter().map(Event::Change));
            }
            Step::Resync(reason) => self.phase = Phase::Snapshot { reason },
        }
    }

    /// Fetch a value the stream left out for its size. The fetched item may be
    /// newer than the change (the key moved on; its own change follows); a key
    /// already gone again keeps `value_omitted` (its unset follows).
    fn complete(&mut self, mut change: Change) -> Change {
        if !change.value_omitted {
            return change;
        }
        match self.client.get_from_hub(&change.key) {
            Ok(item) => {
                change.value = item.value.clone();
                change.rev = item.rev;
                change.time = item.time;
                change.source = item.source.clone();
                change.user = item.user.clone();
                change.value_omitted = false;
                self.state.fill(item);
            }
            Err(Error::HubUnavailable(why)) => {
                self.phase = Phase::Snapshot {
                    reason: format!("could not fetch a large value: {why}"),
                };
            }
            Err(_) => {}
        }
        change
    }

    /// Step 6: report the hub down once, and look for it again later.
    fn hub_down(&mut self, reason: String) {
        if !matches!(self.phase, Phase::Down { .. }) {
            self.events.push_back(Event::HubDown { reason });
        }
        self.buffer.clear();
        self.phase = Phase::Down {
            retry: Instant::now() + RETRY_INTERVAL,
        };
    }

    /// While down: if the hub now announces another events endpoint (a restart
    /// on new tcp ports), subscribe there; else keep waiting on this socket,
    /// which ZeroMQ reconnects by itself.
    fn look_for_hub(&mut self) -> Result<()> {
        let endpoint = self.client.endpoints().events;
        if endpoint != self.endpoint {
            self.socket = open_sub(self.client.context(), &endpoint, self.client.remote())?;
            self.endpoint = endpoint;
            self.phase = self.await_welcome();
        } else {
            self.phase = Phase::Down {
                retry: Instant::now() + RETRY_INTERVAL,
            };
        }
        Ok(())
    }

    fn await_welcome(&self) -> Phase {
        Phase::AwaitWelcome {
            until: Instant::now() + self.interval * SILENT_INTERVALS,
        }
    }

    /// Receive one decodable published message, waiting until `until` at most.
    fn receive(&mut self, until: Instant) -> Result<Option<Published>> {
        let wait = until.saturating_duration_since(Instant::now());
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        if self.socket.poll(zmq::POLLIN, wait_ms)? == 0 {
            return Ok(None);
        }
        let frames = self.socket.recv_multipart(0)?;
        self.last_message = Instant::now();
        let [_topic, body] = frames.as_slice() else {
            return Ok(Some(Published::Unknown)); // not ours to understand: ignorable
        };
        let message: Published = match decode(body) {
            Ok(message) => message,
            Err(_) => return Ok(Some(Published::Unknown)),
        };
        self.learn_interval(&message);
        Ok(Some(message))
    }

    /// Heartbeats and welcomes say how often to expect a heartbeat.
    fn learn_interval(&mut self, message: &Published) {
        let announced = match message {
            Published::Heartbeat(beat) => beat.interval,
            Published::Welcome(welcome) => welcome.interval,
            _ => return,
        };
        if announced.is_finite() && announced > 0.0 {
            self.interval = Duration::from_secs_f64(announced);
        }
    }
}

fn open_sub(context: &zmq::Context, endpoint: &str, remote: Option<&Remote>) -> Result<zmq::Socket> {
    let socket = context.socket(zmq::SUB)?;
    socket.set_linger(0)?;
    socket.set_rcvhwm(RECEIVE_HWM)?;
    // Everything: a filtered subscription could not see gaps in the global sequence.
    socket.set_subscribe(b"")?;
    remote::secure(&socket, remote)?;
    socket
        .connect(endpoint)
        .map_err(|e| Error::HubUnavailable(format!("cannot connect to {endpoint}: {e}")))?;
    Ok(socket)
}
