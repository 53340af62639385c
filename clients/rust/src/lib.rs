//! Rust client for statehub: a small message-bus hub for configuration and live
//! state (one durable store, a ZeroMQ change stream, a plaintext mirror).
//!
//! - [`Client`]: get/set/unset/txn/list/history/status over REQ, with Lazy Pirate
//!   timeouts and the mirror as the read fallback while the hub is down.
//! - [`Subscriber`]: follows the change stream with the sync algorithm of the
//!   protocol (welcome, snapshot, gap detection, replay from the hub's history),
//!   so every change arrives, in order; it can resume from a stored [`Cursor`].
//! - [`Keepalive`]: writes a service's keys before their ttl runs out, from a thread.
//! - [`Waterfall`]: environment > stored > defaults resolution.
//! - [`schema::Schema`]: the schema's verdicts (types, ranges, writers, unknown keys), as the hub gives them.
//!
//! The wire contract is `docs/protocol.md` in the statehub repository.
//!
//! A service that follows its keys (the first events bring the current state):
//!
//! ```no_run
//! use std::time::Duration;
//! use statehub::{Client, Event, Subscriber, SubscriberOptions};
//!
//! fn main() -> statehub::Result<()> {
//!     let client = Client::builder().source("pump-service").build()?;
//!     let options = SubscriberOptions { prefix: "pump.1.".into(), initial: true, ..Default::default() };
//!     let mut changes = Subscriber::new(client, options)?;
//!     loop {
//!         if let Some(Event::Change(change)) = changes.next_event(Duration::from_secs(1))? {
//!             println!("{} = {} (rev {})", change.key, change.value, change.rev);
//!         }
//!     }
//! }
//! ```

pub mod client;
pub mod discovery;
pub mod error;
pub mod keepalive;
pub mod link;
pub mod mirror;
pub mod protocol;
pub mod reachability;
pub mod remote;
pub mod rules;
pub mod schema;
pub mod subscriber;
pub mod sync;
pub mod util;
pub mod waterfall;

pub use client::{Client, ClientBuilder, Fetched, MirrorInfo, SetOptions, DEFAULT_TIMEOUT};
pub use error::{Error, Result};
pub use keepalive::{Keepalive, KeepaliveBuilder};
pub use protocol::{ChangePage, Committed, Item, Items, Op, OpKind};
pub use subscriber::{Cursor, Event, Subscriber, SubscriberOptions};
pub use sync::{Cause, Change, Origin};
pub use waterfall::{Explanation, Layer, Waterfall};
