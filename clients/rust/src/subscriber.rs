//! Following the hub's change stream without ever silently missing a change:
//! the sync algorithm of docs/protocol.md section 5 over real sockets.
//!
//! The [`Subscriber`] owns a SUB socket and a [`Client`] (for snapshots and
//! pages of history) and is driven by the caller: [`Subscriber::next_event`]
//! blocks up to a timeout and returns the next [`Event`]. A gap, a reconnect or
//! a hub restart is filled from the hub's history, so every revision reaches the
//! consumer in order; only a new epoch, or history that no longer reaches back,
//! rebuilds from a snapshot, and says so. Everything runs on the caller's thread,
//! because ZeroMQ sockets must not be shared between threads.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::mirror::read_mirror;
use crate::protocol::{decode, Item, Published, DEFAULT_HEARTBEAT};
use crate::remote::{self, Remote};
use crate::sync::{Cause, Change, Outcome, SyncState, Synced};
use crate::util::now;

/// The hub is presumed down after this many heartbeat intervals of silence.
const SILENT_INTERVALS: u32 = 3;
/// How often a subscriber that lost the hub looks for it again (re-reading
/// `hub.json`, since a restarted hub may listen elsewhere).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// ZeroMQ's default receive high-water mark is 1000 messages; a slow consumer
/// would then see gaps (and catch-ups) early. Queue more before that happens.
const RECEIVE_HWM: i32 = 100_000;
/// A poll that returns this much later than asked was not listening all that
/// time (the process was stopped, or starved of CPU): that time is not silence.
const PAUSE_SLACK: Duration = Duration::from_millis(500);

/// A position in the feed: every change up to revision `.1` of epoch `.0`.
pub type Cursor = (String, u64);

/// What a subscriber reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A key under the prefix changed. Changes come whole revision by whole
    /// revision, in order, live or replayed from history (`change.origin`);
    /// after a snapshot resync, made-up ones (`change.resync`) bring every key
    /// that moved meanwhile to its current value.
    Change(Change),
    /// The replica was (re)loaded from a snapshot at `rev`, holding `keys` keys
    /// under the prefix. `resync` is true when revisions were lost (a counted
    /// resync; `reason` says why).
    Synced {
        epoch: String,
        rev: u64,
        resync: bool,
        reason: String,
        cause: Cause,
        keys: usize,
    },
    /// A catch-up from history (after a gap, a reconnect, a hub restart or a
    /// resume) reached the hub's head: `replayed` revisions came as changes.
    CaughtUp {
        epoch: String,
        rev: u64,
        replayed: u64,
        reason: String,
        cause: Cause,
    },
    /// No heartbeat for three intervals, or no welcome: the hub is presumed down.
    /// The subscriber keeps trying and catches up when the hub is back.
    /// `mirror_rev` is the revision the mirror file holds (None if unreadable).
    HubDown { reason: String, mirror_rev: Option<u64> },
}

/// Settings of a [`Subscriber`].
#[derive(Debug, Clone, Default)]
pub struct SubscriberOptions {
    /// Report changes only for keys starting with this (the stream itself is
    /// always subscribed whole, to see gaps in the global revision sequence).
    pub prefix: String,
    /// Report the state loaded by the first snapshot as made-up changes.
    pub initial: bool,
    /// Resume after this cursor (a consumer's own restart): the replica is
    /// rebuilt as of its revision and every later revision replayed. If that
    /// history is gone, or the hub's epoch differs (`""` accepts any), the first
    /// `Synced` is a resync and every key comes as a made-up change.
    pub since: Option<Cursor>,
}

/// A request the rules asked for, made at the next step.
#[derive(Debug, Clone, PartialEq)]
enum Todo {
    /// The first load: a snapshot, or the resume after `since`.
    Start,
    /// Replay history after the replica's revision.
    CatchUp {
        cause: Cause,
        reason: String,
    },
    Fetch {
        after: u64,
        limit: u32,
    },
    Resync {
        cause: Cause,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Step 2: subscribed, waiting for a welcome proving the subscription is live.
    AwaitWelcome,
    /// Ask the hub for something now (a snapshot or a page of history).
    Request(Todo),
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
    /// Messages received before the first snapshot they must follow (step 1).
    buffer: Vec<Published>,
    /// Events to hand out, each with the cursor the consumer is at once it has handled it.
    events: VecDeque<(Event, Option<Cursor>)>,
    delivered: Option<Cursor>,
    /// The hub's heartbeat interval, as its welcomes and heartbeats announce it.
    interval: Duration,
    /// Time spent listening since the last word from the hub: only time in `poll`
    /// counts, so a stopped process (SIGSTOP, a laptop lid) is not taken for a
    /// silent hub while messages wait to be read.
    quiet: Duration,
    /// A `HubDown` was reported and the hub has not answered since.
    down_reported: bool,
    resyncs: u64,
    replayed: u64,
}

impl Subscriber {
    /// Subscribe through `client`'s data dir and context. The client is kept for
    /// snapshots and pages of history (it waits ten times its timeout for them).
    pub fn new(client: Client, options: SubscriberOptions) -> Result<Subscriber> {
        let endpoint = client.endpoints().events;
        let socket = open_sub(client.context(), &endpoint, client.remote())?;
        let state = SyncState::new(options.prefix.clone());
        let interval = Duration::from_secs_f64(DEFAULT_HEARTBEAT);
        let delivered = options.since.clone();
        let mut subscriber = Subscriber {
            client,
            options,
            socket,
            endpoint,
            state,
            phase: Phase::Live,
            buffer: Vec::new(),
            events: VecDeque::new(),
            delivered,
            interval,
            quiet: Duration::ZERO,
            down_reported: false,
            resyncs: 0,
            replayed: 0,
        };
        subscriber.phase = Phase::AwaitWelcome;
        Ok(subscriber)
    }

    /// How many times the replica was rebuilt from a snapshot losing revisions
    /// (an epoch change, history compacted past it).
    pub fn resync_count(&self) -> u64 {
        self.resyncs
    }

    /// How many revisions (with changes under the prefix) were replayed from history.
    pub fn replayed_count(&self) -> u64 {
        self.replayed
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

    /// The last revision applied to the replica (events for it may still be queued).
    pub fn rev(&self) -> u64 {
        self.state.rev()
    }

    /// Where a consumer that has handled every event handed out so far stands:
    /// store it, and pass it as [`SubscriberOptions::since`] after a restart.
    /// Inside a revision's changes it is the revision before (a restart
    /// repeats the revision in flight: at-least-once).
    pub fn cursor(&self) -> Option<Cursor> {
        match self.state.epoch() {
            Some(epoch) if self.events.is_empty() => Some((epoch.to_string(), self.state.rev())),
            _ => self.delivered.clone(),
        }
    }

    /// Wait up to `timeout` for the next event; `Ok(None)` when there was none.
    /// Call it in a loop; the sync algorithm advances only inside this call.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((event, cursor)) = self.events.pop_front() {
                if cursor.is_some() {
                    self.delivered = cursor;
                }
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
            Phase::AwaitWelcome => {
                if let Some(message) = self.receive(self.listen_until(deadline))? {
                    let welcomed = matches!(message, Published::Welcome(_));
                    self.buffer.push(message);
                    if welcomed {
                        self.phase = self.back_phase();
                    }
                } else if self.is_silent() {
                    self.hub_down("no welcome from the hub".into());
                }
            }
            Phase::Request(todo) => self.request(todo)?,
            Phase::Live => {
                if let Some(message) = self.receive(self.listen_until(deadline))? {
                    let outcomes = self.state.on_message(&message);
                    self.handle(outcomes);
                } else if self.is_silent() {
                    let silence = self.quiet.as_secs_f64();
                    self.hub_down(format!("no heartbeat for {silence:.1} s"));
                }
            }
            Phase::Down { retry } => {
                if let Some(message) = self.receive(deadline.min(retry))? {
                    // Any message proves the subscription is live again (a
                    // reconnecting SUB re-sends it and the hub welcomes it).
                    self.buffer.push(message);
                    self.phase = self.back_phase();
                } else if Instant::now() >= retry {
                    self.look_for_hub()?;
                }
            }
        }
        Ok(())
    }

    /// What to ask once the hub proved the subscription live: the first load,
    /// or the revisions committed while we were away.
    fn back_phase(&mut self) -> Phase {
        if self.state.epoch().is_none() {
            return Phase::Request(Todo::Start);
        }
        self.buffer.clear(); // the catch-up covers them
        Phase::Request(Todo::CatchUp {
            cause: Cause::Reconnect,
            reason: "the hub is back".into(),
        })
    }

    /// Make the request the rules asked for, and apply its answer.
    fn request(&mut self, todo: Todo) -> Result<()> {
        self.phase = Phase::Live;
        let done = match todo {
            Todo::Start => match self.options.since.clone() {
                Some((epoch, rev)) => self.resume(&epoch, rev),
                None => self.resync(Cause::Start, "start".into()),
            },
            Todo::CatchUp { cause, reason } => {
                let outcome = self.state.catch_up(cause, &reason);
                self.handle(vec![outcome]);
                Ok(())
            }
            Todo::Fetch { after, limit } => self.fetch(after, limit),
            Todo::Resync { cause, reason } => self.resync(cause, reason),
        };
        match done {
            Err(Error::HubUnavailable(why)) => {
                self.hub_down(format!("the hub did not answer: {why}"));
                Ok(())
            }
            other => other,
        }
    }

    fn fetch(&mut self, after: u64, limit: u32) -> Result<()> {
        match self.client.changes(after, &self.options.prefix, limit) {
            Ok(page) => {
                self.heard();
                let outcomes = self.state.on_page(&page);
                self.handle(outcomes);
                Ok(())
            }
            Err(err @ Error::HubUnavailable(_)) => Err(err),
            // A hub that cannot page its history (older, or a store behind us).
            Err(err) => {
                self.phase = Phase::Request(Todo::Resync {
                    cause: Cause::Refused,
                    reason: format!(
                        "the hub refused the changes after revision {after}: {}",
                        err.message()
                    ),
                });
                Ok(())
            }
        }
    }

    /// Rebuild the replica as of `rev` (a consumer's last revision), then replay what followed.
    fn resume(&mut self, epoch: &str, rev: u64) -> Result<()> {
        let refused = format!("cannot resume after revision {rev}");
        match self.client.snapshot_at(&self.options.prefix, Some(rev)) {
            Ok(past) if !epoch.is_empty() && past.epoch != epoch => {
                let why = format!(
                    "{refused}: the hub's store is another one (epoch {}, not {epoch}: restored or replaced)",
                    past.epoch
                );
                self.resync(Cause::Epoch, why)
            }
            Ok(past) => {
                let synced = self.state.load(
                    past,
                    Cause::Resume,
                    &format!("resuming after revision {rev}"),
                    now(),
                );
                self.loaded(synced);
                self.phase = Phase::Request(Todo::CatchUp {
                    cause: Cause::Resume,
                    reason: format!("resumed after revision {rev}"),
                });
                Ok(())
            }
            Err(Error::Invalid(why)) => self.resync(Cause::Compacted, format!("{refused}: {why}")),
            Err(err) => Err(err),
        }
    }

    /// Load a snapshot (steps 3 and 4), then apply what was buffered meanwhile.
    fn resync(&mut self, cause: Cause, reason: String) -> Result<()> {
        let items = self.client.snapshot(&self.options.prefix)?;
        let synced = self.state.load(items, cause, &reason, now());
        self.loaded(synced);
        for message in std::mem::take(&mut self.buffer) {
            if self.phase != Phase::Live {
                break; // a request is due; it covers the rest
            }
            let outcomes = self.state.on_message(&message);
            self.handle(outcomes);
        }
        Ok(())
    }

    /// The hub answered a request: it is alive, and a later outage is news again.
    fn heard(&mut self) {
        self.quiet = Duration::ZERO;
        self.down_reported = false;
    }

    /// Three heartbeat intervals of listening without a word: the hub is presumed down.
    fn is_silent(&self) -> bool {
        self.quiet >= self.interval * SILENT_INTERVALS
    }

    /// Listen no longer than `deadline`, nor past the point where silence means the hub is down.
    fn listen_until(&self, deadline: Instant) -> Instant {
        let left = (self.interval * SILENT_INTERVALS).saturating_sub(self.quiet);
        deadline.min(Instant::now() + left)
    }

    fn loaded(&mut self, synced: Synced) {
        self.heard();
        if synced.resync {
            self.resyncs += 1;
        }
        let cursor = Some((synced.epoch.clone(), synced.rev));
        // A consumer is told every key that moved while it was not looking; on a first
        // load (with `initial`, or a resume that could not resume) that is every key.
        let changes = match (synced.first, synced.resync || self.options.initial) {
            (_, false) => Vec::new(),
            (true, true) => self.state.current(),
            (false, true) => synced.changes,
        };
        let event = Event::Synced {
            epoch: synced.epoch,
            rev: synced.rev,
            resync: synced.resync,
            reason: synced.reason,
            cause: synced.cause,
            keys: self.state.items().len(),
        };
        self.events
            .push_back((event, if changes.is_empty() { cursor.clone() } else { None }));
        let count = changes.len();
        for (n, change) in changes.into_iter().enumerate() {
            let at = if n + 1 == count { cursor.clone() } else { None };
            self.events.push_back((Event::Change(change), at));
        }
    }

    /// Hand out what the rules decided, and set up the request they asked for.
    fn handle(&mut self, outcomes: Vec<Outcome>) {
        for outcome in outcomes {
            match outcome {
                Outcome::Update { rev, origin, changes } => {
                    if origin == crate::sync::Origin::Replay {
                        self.replayed += 1;
                    }
                    let count = changes.len();
                    for (n, change) in changes.into_iter().enumerate() {
                        let done = if n + 1 == count { rev } else { rev - 1 };
                        let cursor = Some((change.epoch.clone(), done));
                        self.events.push_back((Event::Change(change), cursor));
                    }
                }
                Outcome::CaughtUp {
                    rev,
                    replayed,
                    cause,
                    reason,
                } => {
                    let epoch = self.state.epoch().unwrap_or_default().to_string();
                    let cursor = Some((epoch.clone(), rev));
                    let event = Event::CaughtUp {
                        epoch,
                        rev,
                        replayed,
                        reason,
                        cause,
                    };
                    self.events.push_back((event, cursor));
                }
                Outcome::Fetch { after, limit, .. } => {
                    self.phase = Phase::Request(Todo::Fetch { after, limit })
                }
                Outcome::Resync { cause, reason } => {
                    self.phase = Phase::Request(Todo::Resync { cause, reason })
                }
            }
        }
    }

    /// Step 6: report the hub down once, and look for it again later.
    fn hub_down(&mut self, reason: String) {
        if !self.down_reported {
            self.down_reported = true;
            // What a reader falls back on meanwhile: the mirror, at its revision.
            let mirror_rev = read_mirror(&self.client.layout().mirror())
                .ok()
                .map(|mirror| mirror.rev);
            self.events
                .push_back((Event::HubDown { reason, mirror_rev }, None));
        }
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
            self.quiet = Duration::ZERO;
            self.phase = Phase::AwaitWelcome;
        } else {
            self.phase = Phase::Down {
                retry: Instant::now() + RETRY_INTERVAL,
            };
        }
        Ok(())
    }

    /// Receive one decodable published message, waiting until `until` at most.
    fn receive(&mut self, until: Instant) -> Result<Option<Published>> {
        let wait = until.saturating_duration_since(Instant::now());
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let began = Instant::now();
        if self.socket.poll(zmq::POLLIN, wait_ms)? == 0 {
            let listened = began.elapsed();
            // Much longer than asked: stopped (SIGSTOP, a laptop lid) or starved, and messages
            // may be waiting in the kernel for ZeroMQ to read. That time was not silence.
            if listened <= wait + PAUSE_SLACK {
                self.quiet += listened;
            }
            return Ok(None);
        }
        let frames = self.socket.recv_multipart(0)?;
        self.quiet = Duration::ZERO;
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
