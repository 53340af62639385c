//! Requests to the hub over REQ, with Lazy Pirate timing (docs/protocol.md
//! section 6) and the mirror as the read fallback while the hub is down.
//!
//! A request ends in one of three ways, and the caller is told which: answered;
//! not delivered (`HubUnavailable`: nothing was written; "not running" only on
//! evidence, see [`crate::reachability`]); delivered but not answered within the
//! timeout (a read: `HubUnavailable`; a write: `OutcomeUnknown`, since the hub
//! may still apply it). A new connection to a busy hub is waited for the whole
//! timeout, as an old one; a write whose connection drops is resent with the
//! same bytes (the same request id) until the timeout.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::discovery::{resolve_data_dir, Endpoints, Layout};
use crate::error::{Error, Result};
use crate::link::{Link, Ready};
use crate::mirror::{read_mirror, MirrorState};
use crate::protocol::{
    decode, encode, ChangePage, Committed, HubStatus, Item, Items, Op, OpKind, Reply, Request, Version,
    WriteMeta, DEFAULT_PAGE_BYTES, PROTOCOL_VERSION,
};
use crate::reachability;
use crate::remote::{self, Remote, RemoteOptions};
use crate::rules::check_ttl;
use crate::schema::{is_schema_key, Schema, SCHEMA_KEY};
use crate::util::{current_user, iso_time, new_request_id};

/// The hub-down timeout of the CLIs: how long to wait for a reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// Between attempts to reach a hub that went away while a write was in flight.
const REOPEN_PAUSE: Duration = Duration::from_millis(100);
/// A snapshot holds every key, so it may take longer than a plain request:
/// ten times the timeout, and at least this long (as the Python client).
const SNAPSHOT_TIMEOUT_FACTOR: u32 = 10;
const MIN_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a read came from when it did not come from the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorInfo {
    pub epoch: String,
    /// The revision the mirror holds: the data may be older than the hub's.
    pub rev: u64,
    /// When the hub wrote the mirror, Unix seconds.
    pub written: f64,
    /// How old the mirror was when read.
    pub age: Duration,
}

impl MirrorInfo {
    fn of(state: &MirrorState) -> MirrorInfo {
        MirrorInfo {
            epoch: state.epoch.clone(),
            rev: state.rev,
            written: state.written,
            age: state.age(),
        }
    }

    /// The staleness notice readers of the mirror must show their user.
    pub fn notice(&self) -> String {
        format!(
            "hub unavailable: read from the mirror at revision {}, written {} ({:.1} s ago); it may be stale",
            self.rev,
            iso_time(self.written),
            self.age.as_secs_f64()
        )
    }
}

/// A read result, and whether it came from the mirror instead of the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched<T> {
    pub data: T,
    /// `Some` when the hub was unavailable and the mirror answered.
    pub mirror: Option<MirrorInfo>,
}

impl<T> Fetched<T> {
    pub fn from_mirror(&self) -> bool {
        self.mirror.is_some()
    }
}

/// How [`Client::set_with`] writes: every field defaults to a plain, unconditional set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetOptions {
    /// Compare-and-set: `Some(0)` = must not exist, `Some(n)` = must be at revision n.
    pub expect: Option<u64>,
    /// Seconds: the hub removes the key (an `unset` with source `ttl`) once it has not been
    /// written for this long; > 0 and at most [`crate::protocol::MAX_TTL_SECONDS`].
    /// [`crate::Keepalive`] writes keys on a schedule to keep them.
    pub ttl: Option<f64>,
}

/// Builds a [`Client`]; every setting has a sensible default.
#[derive(Clone)]
pub struct ClientBuilder {
    data_dir: Option<PathBuf>,
    timeout: Duration,
    mirror_fallback: bool,
    source: String,
    user: String,
    context: Option<zmq::Context>,
    remote: RemoteOptions,
    schema: Option<Schema>,
}

impl Default for ClientBuilder {
    fn default() -> ClientBuilder {
        ClientBuilder {
            data_dir: None,
            timeout: DEFAULT_TIMEOUT,
            mirror_fallback: true,
            source: "rust".into(),
            user: current_user(),
            context: None,
            remote: RemoteOptions::default(),
            schema: None,
        }
    }
}

impl ClientBuilder {
    /// The data dir (else `$STATEHUB_DATA_DIR`, else the platform default).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// How long to wait for the hub: for a connection that can take a request,
    /// and for its reply, together (default 500 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether `get` and `list` read the mirror when the hub is down (default true).
    pub fn mirror_fallback(mut self, enabled: bool) -> Self {
        self.mirror_fallback = enabled;
        self
    }

    /// The `source` stored with writes (default "rust").
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// The `user` stored with writes (default `$USER` or `$USERNAME`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// Share a ZeroMQ context with other sockets of the application.
    pub fn context(mut self, context: zmq::Context) -> Self {
        self.context = Some(context);
        self
    }

    /// A hub on another machine, `tcp://HOST:PORT` (else `$STATEHUB_HUB`, else
    /// `client.toml`; see [`crate::remote`]). Reached over CURVE.
    pub fn hub(mut self, endpoint: impl Into<String>) -> Self {
        self.remote.hub = Some(endpoint.into());
        self
    }

    /// The remote hub's change stream (default: its request port + 1).
    pub fn hub_events(mut self, endpoint: impl Into<String>) -> Self {
        self.remote.events = Some(endpoint.into());
        self
    }

    /// The remote hub's public key (Z85), or a file holding it.
    pub fn server_key(mut self, key: impl Into<String>) -> Self {
        self.remote.server_key = Some(key.into());
        self
    }

    /// Check every write by this schema before sending it (e.g. `Schema::from_toml` of the
    /// data dir's `schema.toml`); see also [`Client::load_schema`]. The hub stays the authority.
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = Some(schema);
        self
    }

    pub fn build(self) -> Result<Client> {
        let data_dir = resolve_data_dir(self.data_dir.as_deref())?;
        let remote = remote::resolve(&self.remote)?;
        Ok(Client {
            context: self.context.unwrap_or_default(),
            layout: Layout::new(data_dir),
            timeout: self.timeout,
            // The local mirror belongs to a local hub: never pass it off as a remote hub's state.
            mirror_fallback: self.mirror_fallback && remote.is_none(),
            remote,
            source: self.source,
            user: self.user,
            link: None,
            last: (String::new(), None),
            schema: self.schema,
        })
    }
}

/// A connection to one hub. Not shareable between threads (ZeroMQ sockets are
/// not), but cheap: make one per thread.
pub struct Client {
    context: zmq::Context,
    layout: Layout,
    timeout: Duration,
    mirror_fallback: bool,
    source: String,
    user: String,
    /// The REQ socket and its monitor; None after any failure, because a REQ
    /// that missed its reply cannot send again (Lazy Pirate: open a new one).
    link: Option<Link>,
    /// The endpoint and hub pid last connected to, for the words of a failure.
    last: (String, Option<u64>),
    /// A hub on another machine (its endpoints and CURVE keys), else None.
    remote: Option<Remote>,
    /// The schema writes are checked by before they are sent (the hub judges them again).
    schema: Option<Schema>,
}

impl Client {
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client with every default: the default data dir, 500 ms timeout.
    pub fn new() -> Result<Client> {
        ClientBuilder::default().build()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn context(&self) -> &zmq::Context {
        &self.context
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `source` this client's writes carry.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The remote hub this client talks to, if any.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    /// Where the hub listens: the remote hub's endpoints, else the data dir's
    /// `hub.json` (read afresh each time).
    pub fn endpoints(&self) -> Endpoints {
        match &self.remote {
            Some(remote) => Endpoints {
                rpc: remote.rpc.clone(),
                events: remote.events.clone(),
                announced: true,
            },
            None => self.layout.endpoints(),
        }
    }

    // --- reads ------------------------------------------------------------------

    /// The key's current item from the hub itself, never from the mirror.
    pub fn get_from_hub(&mut self, key: &str) -> Result<Item> {
        self.get_item(key, None)
    }

    /// The key as it was right after revision `rev`, from the hub's history:
    /// `NotFound` if it did not exist then, `Invalid` when history no longer reaches back.
    pub fn get_at(&mut self, key: &str, rev: u64) -> Result<Item> {
        self.get_item(key, Some(rev))
    }

    fn get_item(&mut self, key: &str, at_rev: Option<u64>) -> Result<Item> {
        let request = Request::Get {
            v: PROTOCOL_VERSION,
            key: key.into(),
            reveal: false,
            at_rev,
        };
        match self.request(&request)? {
            Reply::Item(item) => Ok(item),
            other => Err(unexpected(&other)),
        }
    }

    /// The key's item; from the mirror when the hub is down (see [`Fetched::mirror`]).
    pub fn get(&mut self, key: &str) -> Result<Fetched<Item>> {
        match self.get_from_hub(key) {
            Ok(item) => Ok(Fetched {
                data: item,
                mirror: None,
            }),
            Err(err @ Error::HubUnavailable(_)) if self.mirror_fallback => {
                let state = self.read_mirror_after(err)?;
                let mirror = MirrorInfo::of(&state);
                match state.items.get(key) {
                    Some(item) => Ok(Fetched {
                        data: item.clone(),
                        mirror: Some(mirror),
                    }),
                    None => Err(Error::NotFound(format!(
                        "key '{key}' not found in the mirror at revision {} (the hub is unavailable)",
                        mirror.rev
                    ))),
                }
            }
            Err(err) => Err(err),
        }
    }

    /// Every key starting with `prefix`, sorted; from the mirror when the hub is down.
    pub fn list(&mut self, prefix: &str) -> Result<Fetched<Items>> {
        let request = Request::List {
            v: PROTOCOL_VERSION,
            prefix: prefix.into(),
        };
        match self.request(&request) {
            Ok(Reply::Items(items)) => Ok(Fetched {
                data: items,
                mirror: None,
            }),
            Ok(other) => Err(unexpected(&other)),
            Err(err @ Error::HubUnavailable(_)) if self.mirror_fallback => {
                let state = self.read_mirror_after(err)?;
                let mirror = MirrorInfo::of(&state);
                let items = state
                    .items
                    .into_values()
                    .filter(|item| item.key.starts_with(prefix))
                    .collect();
                Ok(Fetched {
                    data: Items {
                        epoch: mirror.epoch.clone(),
                        rev: mirror.rev,
                        items,
                    },
                    mirror: Some(mirror),
                })
            }
            Err(err) => Err(err),
        }
    }

    /// Every key under `prefix` in one message, for the sync algorithm. Never
    /// from the mirror; waits ten times the timeout, since the reply can be large.
    pub fn snapshot(&mut self, prefix: &str) -> Result<Items> {
        self.snapshot_at(prefix, None)
    }

    /// Every key under `prefix` as it was right after revision `at_rev` (from
    /// history; `Invalid` when it no longer reaches back), or now with `None`.
    pub fn snapshot_at(&mut self, prefix: &str, at_rev: Option<u64>) -> Result<Items> {
        let request = Request::Snapshot {
            v: PROTOCOL_VERSION,
            prefix: prefix.into(),
            at_rev,
            sealed: false,
        };
        match self.request_with(&request, self.long_timeout())? {
            Reply::Items(items) => Ok(items),
            other => Err(unexpected(&other)),
        }
    }

    /// One page of the change feed: the committed revisions after `after`, whole
    /// and in order, at most `limit` changes (1..10000) under `prefix`. Ask again
    /// after `page.last` while `page.more`; `page.compacted` means history no
    /// longer reaches back (rebuild from [`Client::snapshot`]).
    pub fn changes(&mut self, after: u64, prefix: &str, limit: u32) -> Result<ChangePage> {
        let request = Request::Changes {
            v: PROTOCOL_VERSION,
            after,
            prefix: prefix.into(),
            limit,
            max_bytes: DEFAULT_PAGE_BYTES,
        };
        match self.request_with(&request, self.long_timeout())? {
            Reply::ChangePage(page) => Ok(page),
            other => Err(unexpected(&other)),
        }
    }

    /// Snapshots and pages can be large: wait ten times the timeout, at least 5 s.
    fn long_timeout(&self) -> Duration {
        (self.timeout * SNAPSHOT_TIMEOUT_FACTOR).max(MIN_SNAPSHOT_TIMEOUT)
    }

    /// The key's versions, newest first (`limit` 1..10000; the hub's default is 100).
    pub fn history(&mut self, key: &str, limit: u32) -> Result<Vec<Version>> {
        let request = Request::History {
            v: PROTOCOL_VERSION,
            key: key.into(),
            limit,
        };
        match self.request(&request)? {
            Reply::Versions { versions, .. } => Ok(versions),
            other => Err(unexpected(&other)),
        }
    }

    pub fn status(&mut self) -> Result<HubStatus> {
        match self.request(&Request::Status { v: PROTOCOL_VERSION })? {
            Reply::HubStatus(status) => Ok(status),
            other => Err(unexpected(&other)),
        }
    }

    // --- the schema ---------------------------------------------------------------

    /// Read the hub's schema (its `statehub.schema*` keys; from the mirror when the hub is
    /// down) and check every later write by it before sending. Returns it.
    pub fn load_schema(&mut self) -> Result<&Schema> {
        let listing = self.list(SCHEMA_KEY)?;
        let texts: Vec<(String, String)> = listing
            .data
            .items
            .iter()
            .filter(|item| is_schema_key(&item.key))
            .filter_map(|item| {
                item.value
                    .as_str()
                    .map(|text| (item.key.clone(), text.to_string()))
            })
            .collect();
        let schema = Schema::load(texts.iter().map(|(key, text)| (key.as_str(), text.as_str())))?;
        Ok(self.schema.insert(schema))
    }

    /// The schema writes are checked by, if one was given or loaded.
    pub fn current_schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }

    /// Refuse an op the schema refuses, with the hub's words, before anything is sent.
    fn judge(&self, key: &str, value: &Value, op: OpKind, secret: bool) -> Result<()> {
        match &self.schema {
            Some(schema) => schema.check(key, value, &self.source, op, secret).map(|_| ()),
            None => Ok(()),
        }
    }

    // --- writes -----------------------------------------------------------------

    /// Set a key. `expect`: None = unconditional, Some(0) = must not exist,
    /// Some(n) = must be at revision n.
    pub fn set(&mut self, key: &str, value: impl Into<Value>, expect: Option<u64>) -> Result<Committed> {
        self.set_with(key, value, SetOptions { expect, ttl: None })
    }

    /// Set a key with [`SetOptions`]: a compare-and-set condition and a lifetime, e.g.
    /// `client.set_with("svc.pumpd.up", true, SetOptions { ttl: Some(30.0), ..Default::default() })`.
    /// A bad ttl is refused before anything is sent, in the hub's words.
    pub fn set_with(&mut self, key: &str, value: impl Into<Value>, options: SetOptions) -> Result<Committed> {
        let value = value.into();
        if let Some(ttl) = options.ttl {
            check_ttl(key, ttl, OpKind::Set)?;
        }
        self.judge(key, &value, OpKind::Set, false)?;
        let request = Request::Set {
            v: PROTOCOL_VERSION,
            key: key.into(),
            value,
            expect: options.expect,
            secret: String::new(),
            meta: self.write_meta(),
            ttl: options.ttl,
        };
        self.write(&request)
    }

    /// Remove a key (`not_found` if it does not exist). `expect` as for [`Client::set`].
    pub fn unset(&mut self, key: &str, expect: Option<u64>) -> Result<Committed> {
        self.judge(key, &Value::Null, OpKind::Unset, false)?;
        let request = Request::Unset {
            v: PROTOCOL_VERSION,
            key: key.into(),
            expect,
            meta: self.write_meta(),
        };
        self.write(&request)
    }

    /// Apply 1..1000 ops atomically under one revision. A set op may carry a ttl ([`Op::ttl`]).
    pub fn txn(&mut self, ops: Vec<Op>) -> Result<Committed> {
        for op in &ops {
            if let Some(ttl) = op.ttl {
                check_ttl(&op.key, ttl, op.op)?;
            }
        }
        if ops.iter().any(|op| is_schema_key(&op.key)) {
            // The txn brings its own schema: only the hub can judge its other ops by it.
        } else {
            for op in &ops {
                self.judge(&op.key, &op.value, op.op, !op.secret.is_empty())?;
            }
        }
        let request = Request::Txn {
            v: PROTOCOL_VERSION,
            ops,
            meta: self.write_meta(),
        };
        self.write(&request)
    }

    fn write_meta(&self) -> WriteMeta {
        WriteMeta {
            request_id: new_request_id(),
            source: self.source.clone(),
            user: self.user.clone(),
            backfill: false,
        }
    }

    fn write(&mut self, request: &Request) -> Result<Committed> {
        match self.request_with(request, self.timeout)? {
            Reply::Committed(committed) => Ok(committed),
            other => Err(unexpected(&other)),
        }
    }

    // --- transport --------------------------------------------------------------

    /// Send one request and wait for its reply, at most the timeout. An `error`
    /// reply becomes an `Err`; see the module's notes for the other outcomes.
    pub fn request(&mut self, request: &Request) -> Result<Reply> {
        self.request_with(request, self.timeout)
    }

    fn request_with(&mut self, request: &Request, timeout: Duration) -> Result<Reply> {
        let body = encode(request).map_err(|e| Error::Protocol(format!("cannot encode the request: {e}")))?;
        let is_write = matches!(
            request,
            Request::Set { .. } | Request::Unset { .. } | Request::Txn { .. }
        );
        let result = self.deliver(&body, timeout, is_write);
        if result.is_err() {
            // A REQ that missed its reply cannot send again: start afresh next time.
            self.link = None;
        }
        let reply =
            decode(&result?).map_err(|e| Error::Protocol(format!("cannot decode the hub's reply: {e}")))?;
        match reply {
            Reply::Error(error) => Err(error.into()),
            Reply::Unknown => Err(Error::Protocol("the hub sent a reply of an unknown type".into())),
            reply => Ok(reply),
        }
    }

    /// Deliver `body` and wait for its reply until `timeout` has passed (the module's notes).
    fn deliver(&mut self, body: &[u8], timeout: Duration, is_write: bool) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        // A write reached a hub that went away unanswered: it may be applied.
        let mut in_doubt = false;
        loop {
            let link = match self.link() {
                Ok(link) => link,
                Err(_) if in_doubt && pause(deadline) => continue, // a hub may be restarting
                Err(_) if in_doubt => return Err(self.unanswered(is_write, timeout, true)),
                Err(err) => return Err(err),
            };
            let ready = link.send(body, deadline)?;
            if ready != Ready::Yes {
                let link = self.link.take().expect("the link just used");
                if in_doubt && ready != Ready::TimedOut && pause(deadline) {
                    continue;
                }
                if in_doubt {
                    return Err(self.unanswered(is_write, timeout, true));
                }
                return Err(self.not_delivered(link, ready, timeout));
            }
            if let Some(reply) = link.receive(deadline)? {
                return Ok(reply);
            }
            let dropped = self.link.take().is_some_and(|link| link.dropped);
            in_doubt = is_write;
            if !dropped || Instant::now() >= deadline {
                return Err(self.unanswered(is_write, timeout, dropped));
            }
            // The hub went away after taking the request: ask again, with the same bytes (and request id).
        }
    }

    /// The open link, or a new one to where the hub is now (`hub.json` is read afresh).
    fn link(&mut self) -> Result<&mut Link> {
        if let Some(link) = self.link.as_mut() {
            link.read_events()?;
            if link.dropped {
                self.link = None; // the hub went away since: find it again (maybe on new ports)
            }
        }
        if self.link.is_none() {
            let (endpoint, pid) = match &self.remote {
                Some(remote) => (remote.rpc.clone(), None),
                None => {
                    let info = reachability::announced_hub(&self.layout)?;
                    (info.rpc, Some(info.pid))
                }
            };
            let link = Link::open(&self.context, &endpoint, pid, self.remote.as_ref())?;
            self.last = (endpoint, pid);
            self.link = Some(link);
        }
        Ok(self.link.as_mut().expect("a link was just opened"))
    }

    fn not_delivered(&self, link: Link, ready: Ready, timeout: Duration) -> Error {
        let local = self.remote.is_none();
        match (ready, link.handshake_error) {
            (Ready::HandshakeRefused, Some(error)) => error,
            (Ready::Refused, _) => {
                let announced = link.pid.map(|pid| (pid, &self.layout));
                reachability::refused(&link.endpoint, local, announced)
            }
            _ => {
                let pid = link.pid.filter(|pid| reachability::process_exists(*pid));
                reachability::silent(&link.endpoint, pid, timeout, link.was_connected, local)
            }
        }
    }

    fn unanswered(&self, is_write: bool, timeout: Duration, dropped: bool) -> Error {
        let (endpoint, pid) = (&self.last.0, self.last.1);
        if is_write {
            reachability::unanswered_write(endpoint, pid, timeout, dropped)
        } else {
            reachability::unanswered_read(endpoint, pid, timeout)
        }
    }

    /// The mirror, read because the hub did not answer; if it is unusable too,
    /// report both failures.
    fn read_mirror_after(&self, hub_error: Error) -> Result<MirrorState> {
        read_mirror(&self.layout.mirror()).map_err(|mirror_error| {
            Error::HubUnavailable(format!(
                "{}; and no usable mirror: {}",
                hub_error.message(),
                mirror_error.message()
            ))
        })
    }
}

/// Sleep a little before trying a hub that went away again; false once `deadline` has passed.
fn pause(deadline: Instant) -> bool {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return false;
    }
    std::thread::sleep(remaining.min(REOPEN_PAUSE));
    true
}

fn unexpected(reply: &Reply) -> Error {
    Error::Protocol(format!("unexpected reply from the hub: {reply:?}"))
}
