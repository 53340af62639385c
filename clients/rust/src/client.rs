//! Requests to the hub over REQ, with Lazy Pirate timing (docs/protocol.md
//! section 6) and the mirror as the read fallback while the hub is down.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::discovery::{resolve_data_dir, Endpoints, Layout};
use crate::error::{Error, Result};
use crate::mirror::{read_mirror, MirrorState};
use crate::protocol::{
    decode, encode, ChangePage, Committed, HubStatus, Item, Items, Op, Reply, Request, Version, WriteMeta,
    DEFAULT_PAGE_BYTES, PROTOCOL_VERSION,
};
use crate::remote::{self, Remote, RemoteOptions};
use crate::util::{current_user, iso_time, new_request_id};

/// The hub-down timeout of the CLIs: how long to wait for a reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// `send` fails after this long when no hub is connected (IMMEDIATE=1).
const SEND_TIMEOUT_MS: i32 = 200;
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

/// Builds a [`Client`]; every setting has a sensible default.
#[derive(Clone)]
pub struct ClientBuilder {
    data_dir: Option<PathBuf>,
    timeout: Duration,
    write_retries: u32,
    mirror_fallback: bool,
    source: String,
    user: String,
    context: Option<zmq::Context>,
    remote: RemoteOptions,
}

impl Default for ClientBuilder {
    fn default() -> ClientBuilder {
        ClientBuilder {
            data_dir: None,
            timeout: DEFAULT_TIMEOUT,
            write_retries: 1,
            mirror_fallback: true,
            source: "rust".into(),
            user: current_user(),
            context: None,
            remote: RemoteOptions::default(),
        }
    }
}

impl ClientBuilder {
    /// The data dir (else `$STATEHUB_DATA_DIR`, else the platform default).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The hub-down timeout: how long to wait for one reply (default 500 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times to resend a write whose reply timed out (default 1, as the
    /// Python client). Safe: the resend keeps its `request_id`, so the hub
    /// applies it at most once. Reads are not resent: they fall back to the mirror.
    pub fn write_retries(mut self, retries: u32) -> Self {
        self.write_retries = retries;
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

    pub fn build(self) -> Result<Client> {
        let data_dir = resolve_data_dir(self.data_dir.as_deref())?;
        let remote = remote::resolve(&self.remote)?;
        Ok(Client {
            context: self.context.unwrap_or_default(),
            layout: Layout::new(data_dir),
            timeout: self.timeout,
            write_retries: self.write_retries,
            // The local mirror belongs to a local hub: never pass it off as a remote hub's state.
            mirror_fallback: self.mirror_fallback && remote.is_none(),
            remote,
            source: self.source,
            user: self.user,
            socket: None,
        })
    }
}

/// A connection to one hub. Not shareable between threads (ZeroMQ sockets are
/// not), but cheap: make one per thread.
pub struct Client {
    context: zmq::Context,
    layout: Layout,
    timeout: Duration,
    write_retries: u32,
    mirror_fallback: bool,
    source: String,
    user: String,
    /// The REQ socket; None after a timeout, because a REQ that missed its reply
    /// cannot send again (Lazy Pirate: close it and open a new one).
    socket: Option<zmq::Socket>,
    /// A hub on another machine (its endpoints and CURVE keys), else None.
    remote: Option<Remote>,
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
        match self.request_with(&request, self.long_timeout(), 0)? {
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
        match self.request_with(&request, self.long_timeout(), 0)? {
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

    // --- writes -----------------------------------------------------------------

    /// Set a key. `expect`: None = unconditional, Some(0) = must not exist,
    /// Some(n) = must be at revision n.
    pub fn set(&mut self, key: &str, value: impl Into<Value>, expect: Option<u64>) -> Result<Committed> {
        let request = Request::Set {
            v: PROTOCOL_VERSION,
            key: key.into(),
            value: value.into(),
            expect,
            secret: String::new(),
            meta: self.write_meta(),
        };
        self.write(&request)
    }

    /// Remove a key (`not_found` if it does not exist). `expect` as for [`Client::set`].
    pub fn unset(&mut self, key: &str, expect: Option<u64>) -> Result<Committed> {
        let request = Request::Unset {
            v: PROTOCOL_VERSION,
            key: key.into(),
            expect,
            meta: self.write_meta(),
        };
        self.write(&request)
    }

    /// Apply 1..1000 ops atomically under one revision.
    pub fn txn(&mut self, ops: Vec<Op>) -> Result<Committed> {
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
        }
    }

    fn write(&mut self, request: &Request) -> Result<Committed> {
        match self.request_with(request, self.timeout, self.write_retries)? {
            Reply::Committed(committed) => Ok(committed),
            other => Err(unexpected(&other)),
        }
    }

    // --- transport --------------------------------------------------------------

    /// Send one request and wait for its reply (at most the timeout; no resend).
    /// An `error` reply becomes an `Err`.
    pub fn request(&mut self, request: &Request) -> Result<Reply> {
        self.request_with(request, self.timeout, 0)
    }

    /// Send `request`, resending it up to `retries` times when its reply times out.
    fn request_with(&mut self, request: &Request, timeout: Duration, retries: u32) -> Result<Reply> {
        let body = encode(request).map_err(|e| Error::Protocol(format!("cannot encode the request: {e}")))?;
        let mut attempt = 0;
        let reply = loop {
            match self.exchange(&body, timeout) {
                Err(Failure::TimedOut) if attempt < retries => attempt += 1,
                Err(failure) => return Err(self.failure_error(failure, timeout)),
                Ok(reply) => break reply,
            }
        };
        match reply {
            Reply::Error(error) => Err(error.into()),
            Reply::Unknown => Err(Error::Protocol("the hub sent a reply of an unknown type".into())),
            reply => Ok(reply),
        }
    }

    fn failure_error(&self, failure: Failure, timeout: Duration) -> Error {
        let rpc = self.endpoints().rpc;
        let hint = self
            .remote
            .as_ref()
            .map(|r| format!("; {}", r.silence_hint()))
            .unwrap_or_default();
        match failure {
            Failure::NotConnected => Error::HubUnavailable(format!("no hub is listening at {rpc}{hint}")),
            Failure::TimedOut => Error::HubUnavailable(format!(
                "no reply from the hub at {rpc} within {:.1} s{hint}",
                timeout.as_secs_f64()
            )),
            Failure::Other(err) => err,
        }
    }

    /// One send and one receive on the REQ socket, dropping it on any failure.
    fn exchange(&mut self, body: &[u8], timeout: Duration) -> Result<Reply, Failure> {
        let result = self.try_exchange(body, timeout);
        if result.is_err() {
            // A REQ that missed its reply cannot send again: start afresh next time.
            self.socket = None;
        }
        result
    }

    fn try_exchange(&mut self, body: &[u8], timeout: Duration) -> Result<Reply, Failure> {
        let socket = self.connected_socket().map_err(Failure::Other)?;
        match socket.send(body, 0) {
            Ok(()) => {}
            // IMMEDIATE + SNDTIMEO: no connection completed in time, nothing was queued.
            Err(zmq::Error::EAGAIN) => return Err(Failure::NotConnected),
            Err(err) => return Err(Failure::Other(err.into())),
        }
        match socket.poll(zmq::POLLIN, millis(timeout)) {
            Ok(0) => return Err(Failure::TimedOut),
            Ok(_) => {}
            Err(err) => return Err(Failure::Other(err.into())),
        }
        let reply = socket.recv_bytes(0).map_err(|e| Failure::Other(e.into()))?;
        decode(&reply)
            .map_err(|e| Failure::Other(Error::Protocol(format!("cannot decode the hub's reply: {e}"))))
    }

    fn connected_socket(&mut self) -> Result<&zmq::Socket> {
        if self.socket.is_none() {
            self.socket = Some(self.open_socket()?);
        }
        Ok(self.socket.as_ref().expect("socket was just opened"))
    }

    fn open_socket(&self) -> Result<zmq::Socket> {
        let socket = self.context.socket(zmq::REQ)?;
        socket.set_linger(0)?; // never hang at exit on a request queued to a dead hub
        socket.set_immediate(true)?; // queue only to a completed connection
        socket.set_sndtimeo(SEND_TIMEOUT_MS)?;
        remote::secure(&socket, self.remote.as_ref())?;
        let endpoint = self.endpoints().rpc;
        socket
            .connect(&endpoint)
            .map_err(|e| Error::HubUnavailable(format!("cannot connect to {endpoint}: {e}")))?;
        Ok(socket)
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

/// Why one exchange failed; only a timed-out reply is worth resending.
enum Failure {
    NotConnected,
    TimedOut,
    Other(Error),
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn unexpected(reply: &Reply) -> Error {
    Error::Protocol(format!("unexpected reply from the hub: {reply:?}"))
}
