//! Keeping keys alive: a background thread that writes a client's keys before
//! their ttl runs out, as the Python client's `Client.keepalive`.
//!
//! A key with a ttl (docs/schema.md, "Liveness") is removed by the hub when it has
//! not been written for that long. A service keeps its own keys alive with a
//! [`Keepalive`], so "which services are running" is live state that cleans itself
//! up when the service stops or dies, like an etcd lease or MQTT's last will. The
//! thread owns a [`Client`] of its own (sockets stay in one thread).
//!
//! ```no_run
//! use std::time::Duration;
//! use statehub::{Client, Keepalive};
//!
//! fn main() -> statehub::Result<()> {
//!     let client = Client::builder().source("pumpd").build()?;
//!     let beat = Keepalive::builder(client, ["service.pumpd.heartbeat"], Duration::from_secs(10))
//!         .ttl(30.0)
//!         .value(|_key| serde_json::json!(statehub::util::now()))
//!         .start()?;
//!     // ... the service runs ...
//!     beat.stop(); // the key expires 30 s after the last beat
//!     Ok(())
//! }
//! ```

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::protocol::{Op, OpKind};
use crate::rules::{check_key, check_prefix, check_ttl};

/// What a beat writes for a key when not its current value again (a heartbeat: the time).
pub type ValueFn = Box<dyn FnMut(&str) -> Value + Send>;

/// What the thread reports: beats that reached the hub, and the last failure.
#[derive(Debug, Default)]
struct Status {
    beats: u64,
    last_error: Option<Error>,
}

/// Sets up a [`Keepalive`]: the keys, how often, and what each beat writes.
pub struct KeepaliveBuilder {
    client: Client,
    keys: Vec<String>,
    interval: Duration,
    ttl: Option<f64>,
    value: Option<ValueFn>,
}

impl KeepaliveBuilder {
    /// Each beat writes the keys with this ttl (seconds); pick an interval well under it.
    /// Without one, a key keeps the ttl its schema rule gives, if any.
    pub fn ttl(mut self, seconds: f64) -> Self {
        self.ttl = Some(seconds);
        self
    }

    /// Each beat writes `value(key)` (e.g. the time) instead of the key's current value again.
    pub fn value(mut self, value: impl FnMut(&str) -> Value + Send + 'static) -> Self {
        self.value = Some(Box::new(value));
        self
    }

    /// Check the settings (keys, interval, ttl: refused here, not at every beat) and start
    /// the thread; its first beat writes at once.
    pub fn start(self) -> Result<Keepalive> {
        if self.interval.is_zero() {
            return Err(Error::Invalid(
                "keepalive interval must be > 0 seconds, got 0".into(),
            ));
        }
        for key in &self.keys {
            match key.strip_suffix('.') {
                Some(prefix) => {
                    check_prefix(key)?;
                    if let Some(ttl) = self.ttl {
                        check_ttl(prefix, ttl, OpKind::Set)?;
                    }
                }
                None => {
                    check_key(key)?;
                    if let Some(ttl) = self.ttl {
                        check_ttl(key, ttl, OpKind::Set)?;
                    }
                }
            }
        }
        let status = Arc::new(Mutex::new(Status::default()));
        let (stop, stopped) = mpsc::channel::<()>();
        let mut beat = Beat {
            client: self.client,
            keys: self.keys,
            ttl: self.ttl,
            value: self.value,
            status: Arc::clone(&status),
        };
        let interval = self.interval;
        let thread = std::thread::Builder::new()
            .name("statehub-keepalive".into())
            .spawn(move || loop {
                beat.beat();
                // A stop (or the Keepalive dropped) ends the wait at once.
                if stopped.recv_timeout(interval) != Err(RecvTimeoutError::Timeout) {
                    break;
                }
            })
            .map_err(|e| Error::Io(format!("cannot start the keepalive thread: {e}")))?;
        Ok(Keepalive {
            stop: Some(stop),
            thread: Some(thread),
            status,
        })
    }
}

/// Writes keys every interval until [`Keepalive::stop`] or drop; the keys then expire
/// by themselves once their ttl runs out. The hub being down is recorded
/// ([`Keepalive::last_error`]) and ridden out.
pub struct Keepalive {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Mutex<Status>>,
}

impl Keepalive {
    /// Keep `keys` alive: each a key, or a prefix ending in `.` (every key under it
    /// that `client`'s source wrote last). Each beat writes every key once, in one txn:
    /// its current value again (only if nobody wrote it since), or what
    /// [`KeepaliveBuilder::value`] gives. The keepalive owns `client`: give it one of its own.
    pub fn builder<I, K>(client: Client, keys: I, interval: Duration) -> KeepaliveBuilder
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        KeepaliveBuilder {
            client,
            keys: keys.into_iter().map(Into::into).collect(),
            interval,
            ttl: None,
            value: None,
        }
    }

    /// Beats that reached the hub (a beat refused as a conflict counts: someone else wrote).
    pub fn beats(&self) -> u64 {
        self.status().beats
    }

    /// Why the last beat failed; None once a beat succeeds again.
    pub fn last_error(&self) -> Option<Error> {
        self.status().last_error.clone()
    }

    /// Whether the thread is still beating.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|thread| !thread.is_finished())
    }

    /// End the heartbeat (a beat under way finishes first) and close its client.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        drop(self.stop.take()); // the thread's wait ends: its channel is closed
        if let Some(thread) = self.thread.take() {
            // A panic in a value function ended the thread already; nothing is left to stop.
            let _ = thread.join();
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        // The status is two plain fields: still meaningful after a panic elsewhere.
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The thread's side: the client and what to write.
struct Beat {
    client: Client,
    keys: Vec<String>,
    ttl: Option<f64>,
    value: Option<ValueFn>,
    status: Arc<Mutex<Status>>,
}

impl Beat {
    /// Write every key once now.
    fn beat(&mut self) {
        let outcome = self.ops().and_then(|ops| {
            if ops.is_empty() {
                Ok(())
            } else {
                self.client.txn(ops).map(|_| ())
            }
        });
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(()) => {
                status.beats += 1;
                status.last_error = None;
            }
            // Someone else wrote one of them meanwhile: it is alive anyway.
            Err(Error::Conflict { .. }) => status.beats += 1,
            Err(err) => status.last_error = Some(err),
        }
    }

    fn ops(&mut self) -> Result<Vec<Op>> {
        let mut ops = Vec::new();
        for key in self.keys.clone() {
            if key.ends_with('.') {
                let items = self.client.list(&key)?.data.items;
                let source = self.client.source().to_string();
                for item in items {
                    if item.source == source && (self.value.is_some() || !item.secret) {
                        ops.push(self.op(&item.key, item.value, item.rev));
                    }
                }
            } else if let Some(value) = self.value.as_mut() {
                ops.push(with_ttl(Op::set(key.as_str(), value(&key)), self.ttl));
            } else {
                match self.client.get_from_hub(&key) {
                    Ok(item) if !item.secret => ops.push(self.op(&key, item.value, item.rev)),
                    // A secret's placeholder written back changes nothing, so renews nothing.
                    Ok(_) => {}
                    Err(Error::NotFound(_)) => {} // expired, or never written: nothing to rewrite
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(ops)
    }

    /// The op that renews `key`: the value function's, else the same value again, if
    /// nobody wrote it since `rev`.
    fn op(&mut self, key: &str, current: Value, rev: u64) -> Op {
        let op = match self.value.as_mut() {
            Some(value) => Op::set(key, value(key)),
            None => Op::set(key, current).expect(rev),
        };
        with_ttl(op, self.ttl)
    }
}

fn with_ttl(op: Op, ttl: Option<f64>) -> Op {
    match ttl {
        Some(seconds) => op.ttl(seconds),
        None => op,
    }
}
